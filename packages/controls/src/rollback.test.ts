import { featureFlagRepository } from '@jobfleet/db';
import { createLogger, createMetrics } from '@jobfleet/observability';
import { createRedisConnection, createSubscriberConnection, type RedisClient } from '@jobfleet/queue';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../../../tests/support/redis';
import { openFlagClient, type FlagClient } from './flag-client';
import { createFleetControls, type FleetControls } from './live';
import { createFlagRollbackMonitor, JOB_KEY_ATTRIBUTE, type FlagRollbackMonitor } from './rollback';

const FLAG = 'test.risky-path';

describe('automatic flag rollback', () => {
  let testDb: TestDatabase;
  let redis: RedisClient;
  let controls: FleetControls;
  let monitor: FlagRollbackMonitor;
  let flags: FlagClient;
  const metrics = createMetrics();
  const prefix = uniquePrefix('rollback');
  let jobs = 0;

  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme', 'globex'] });
    redis = createRedisConnection(TEST_REDIS_URL, 'worker', { name: 'rollback-test' });
    const logger = createLogger({ level: 'silent', serviceName: 'rollback' });
    controls = createFleetControls({ db: testDb.database.db, redis, subscriber: createSubscriberConnection(redis, 'rollback-test'), prefix, pollMs: 60_000, logger });
    monitor = createFlagRollbackMonitor({ db: testDb.database.db, redis, prefix, controls, settings: { failureRatio: 0.2, windowMs: 60_000, minSample: 5 }, metrics, logger });
    const definition = { key: FLAG, description: '', enabled: true, variants: { on: true, off: false }, rolloutVariant: 'on', defaultVariant: 'off', killVariant: 'off', tenants: ['acme'], percentage: 0 };
    await featureFlagRepository.put(testDb.database.db, definition, { actor: 'operator:test', actorTenantId: null });
    await controls.start();
    flags = await openFlagClient(controls, [monitor.hook]);
  });
  afterAll(async () => {
    await flags.close();
    await controls.close();
    await deletePrefix(prefix);
    redis.disconnect();
    await testDb.drop();
  });

  /** One job attempt of `tenantId` that evaluates the flag, then ends with `outcome`. */
  async function attempt(tenantId: string, outcome: 'completed' | 'failed'): Promise<void> {
    const jobKey = `test:${++jobs}`;
    await flags.client.getBooleanValue(FLAG, false, { targetingKey: tenantId, [JOB_KEY_ATTRIBUTE]: jobKey });
    await monitor.recordOutcome(jobKey, outcome);
  }
  const enabled = async () => (await featureFlagRepository.find(testDb.database.db, FLAG))?.enabled;

  it('counts only the rollout variant, decides nothing below the sample, and rolls back past the ratio, once', async () => {
    // The flag's series starts at 0, so the alert sees the first rollback as an increase.
    expect((await metrics.featureFlagRollbacks.get()).values).toEqual([expect.objectContaining({ labels: { flag: FLAG }, value: 0 })]);
    // The default variant's failures (another tenant's) are the old path's: never counted.
    for (let index = 0; index < 10; index++) await attempt('globex', 'failed');
    expect(await enabled()).toBe(true);
    // Under the minimum sample, even all failures decide nothing.
    for (let index = 0; index < 4; index++) await attempt('acme', 'completed');
    expect(await enabled()).toBe(true);
    // 1 failure in 5 is 20 %: not over the threshold.
    await attempt('acme', 'failed');
    expect(await enabled()).toBe(true);
    // 2 in 6 is.
    await attempt('acme', 'failed');
    expect(await enabled()).toBe(false);
    const stored = await featureFlagRepository.find(testDb.database.db, FLAG);
    expect(stored?.disabledReason).toBe('variant "on" failed 2 of 6 job attempts (33.3%, over 20%) within 60 s');
    // Now off: acme gets the kill variant, and further failures change nothing.
    expect(await flags.client.getBooleanValue(FLAG, true, { targetingKey: 'acme' })).toBe(false);
    await attempt('acme', 'failed');
    expect((await metrics.featureFlagRollbacks.get()).values).toEqual([expect.objectContaining({ labels: { flag: FLAG }, value: 1 })]);
  });
});
