import { eq } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { schema } from './index';
import { API_KEY_SCOPES, authenticateApiKey, createApiKey, createTenant, ensureDevTenant, revokeApiKey } from './tenants';

describe('tenants and API keys', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme', 'globex'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });

  it('creating a tenant twice renames it instead of failing', async () => {
    const { db } = testDb.database;
    await createTenant(db, { id: 'acme', name: 'Acme Corp' });
    const rows = await db.select().from(schema.tenants).where(eq(schema.tenants.id, 'acme'));
    expect(rows.map((r) => r.name)).toEqual(['Acme Corp']);
  });

  it('returns a generated key once and stores only its hash and prefix', async () => {
    const { db } = testDb.database;
    const created = await createApiKey(db, { tenantId: 'acme', name: 'ci', scopes: ['jobs:write'] });
    expect(created.key).toMatch(/^jf_[\w-]{43}$/);
    const [row] = await db.select().from(schema.apiKeys).where(eq(schema.apiKeys.id, created.id));
    expect(row?.keyPrefix).toBe(created.key.slice(0, 8));
    expect(row?.keyHash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toContain(created.key);
  });

  it('authenticates a key to its tenant and scopes, and refuses unknown and revoked keys', async () => {
    const { db } = testDb.database;
    const created = await createApiKey(db, { tenantId: 'acme', name: 'reader', scopes: ['jobs:read', 'admin'] });
    await expect(authenticateApiKey(db, created.key)).resolves.toEqual({
      keyId: created.id,
      tenantId: 'acme',
      scopes: ['jobs:read', 'admin'],
    });
    await expect(authenticateApiKey(db, `${created.key}x`)).resolves.toBeNull();
    await expect(revokeApiKey(db, created.id)).resolves.toBe(true);
    await expect(revokeApiKey(db, created.id)).resolves.toBe(false);
    await expect(authenticateApiKey(db, created.key)).resolves.toBeNull();
  });

  it('seeding a given key twice is idempotent, but another tenant cannot claim it', async () => {
    const { db } = testDb.database;
    const first = await createApiKey(db, { tenantId: 'acme', name: 'seed', scopes: ['jobs:read'], key: 'jf_seeded_key_0001' });
    const again = await createApiKey(db, { tenantId: 'acme', name: 'seed', scopes: ['jobs:read'], key: 'jf_seeded_key_0001' });
    expect(again).toEqual(first);
    await expect(
      createApiKey(db, { tenantId: 'globex', name: 'seed', scopes: ['admin'], key: 'jf_seeded_key_0001' }),
    ).rejects.toThrow(/another tenant/);
  });

  it('ignores scopes it does not know', async () => {
    const { db } = testDb.database;
    const created = await createApiKey(db, { tenantId: 'acme', name: 'odd', scopes: ['jobs:read'] });
    await db.update(schema.apiKeys).set({ scopes: ['jobs:read', 'root'] }).where(eq(schema.apiKeys.id, created.id));
    expect((await authenticateApiKey(db, created.key))?.scopes).toEqual(['jobs:read']);
  });

  it('seeds the development tenant and key at every boot without failing', async () => {
    const { db } = testDb.database;
    const dev = { tenantId: 'dev', apiKey: 'jf_dev_local_only_key' };
    await ensureDevTenant(db, dev);
    await ensureDevTenant(db, dev);
    await expect(authenticateApiKey(db, dev.apiKey)).resolves.toMatchObject({ tenantId: 'dev', scopes: API_KEY_SCOPES });
  });
});
