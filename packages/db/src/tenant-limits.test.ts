import { loadConfig } from '@jobfleet/config';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { createTenantLimitsCache, tenantLimitsRepository } from './tenant-limits';

describe('tenant tiers and limit overrides', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme', 'globex'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });

  const settings = { ...loadConfig({ NODE_ENV: 'test' }).tenants, limitsCacheMs: 0 };

  it('a tenant without a tier gets the default tier; a tier and overrides apply in order', async () => {
    const { db } = testDb.database;
    const cache = createTenantLimitsCache(db, settings);
    const before = await cache.limitsOf('acme');
    expect(before.tier).toBe('standard');
    expect(before.quotas('calendar-sync')).toEqual({ jobsPerDay: 100_000, maxWaitingJobs: 10_000, maxRunningJobs: 10 });

    expect(await tenantLimitsRepository.update(db, 'acme', { tier: 'free', overrides: { jobsPerDay: 50, kinds: { 'afip-sync': { jobsPerDay: 5, maxRunningJobs: 1 } } } })).toBe(true);
    const after = await cache.limitsOf('acme');
    expect(after.tier).toBe('free');
    expect(after.requestsPerMinute).toBe(120);
    expect(after.quotas('calendar-sync')).toEqual({ jobsPerDay: 50, maxWaitingJobs: 100, maxRunningJobs: 2 });
    expect(after.quotas('afip-sync')).toEqual({ jobsPerDay: 5, maxWaitingJobs: 100, maxRunningJobs: 1 });
    // The other tenant is untouched.
    expect((await cache.limitsOf('globex')).tier).toBe('standard');
  });

  it('describes the stored tier and overrides with the effective limits of each kind asked for', async () => {
    const { db } = testDb.database;
    expect(await tenantLimitsRepository.describe(db, settings, 'acme', ['calendar-sync', 'afip-sync'])).toEqual({
      tenantId: 'acme',
      tier: 'free',
      overrides: { jobsPerDay: 50, kinds: { 'afip-sync': { jobsPerDay: 5, maxRunningJobs: 1 } } },
      effective: {
        tier: 'free',
        requestsPerMinute: 120,
        keyRequestsPerMinute: 120,
        kinds: {
          'calendar-sync': { jobsPerDay: 50, maxWaitingJobs: 100, maxRunningJobs: 2 },
          'afip-sync': { jobsPerDay: 5, maxWaitingJobs: 100, maxRunningJobs: 1 },
        },
      },
    });
    expect(await tenantLimitsRepository.describe(db, settings, 'nobody', ['calendar-sync'])).toBeUndefined();
  });

  it('refuses overrides that do not parse and an unknown tenant', async () => {
    const { db } = testDb.database;
    await expect(tenantLimitsRepository.update(db, 'acme', { overrides: { jobsPerDay: -1 } })).rejects.toThrow();
    await expect(tenantLimitsRepository.update(db, 'acme', { overrides: { burst: 5 } as never })).rejects.toThrow();
    expect(await tenantLimitsRepository.update(db, 'nobody', { tier: 'free' })).toBe(false);
  });

  it('a tier removed from config and overrides written by hand fall back instead of failing', async () => {
    const { db } = testDb.database;
    await db.execute(sql`update tenants set tier = 'gold', limit_overrides = '{"jobsPerDay":"many"}' where id = 'globex'`);
    const limits = await createTenantLimitsCache(db, settings).limitsOf('globex');
    expect(limits.tier).toBe('standard');
    expect(limits.quotas('backup').jobsPerDay).toBe(100_000);
  });
});
