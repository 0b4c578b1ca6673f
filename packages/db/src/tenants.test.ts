import { eq } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { API_KEY_SCOPES, authenticateApiKey } from './api-keys';
import { schema } from './index';
import { createTenant, ensureDevTenant } from './tenants';

describe('tenants', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme'] });
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

  it('seeds the development tenant and key at every boot without failing', async () => {
    const { db } = testDb.database;
    const dev = { tenantId: 'dev', apiKey: 'jf_dev_local_only_key' };
    await ensureDevTenant(db, dev);
    await ensureDevTenant(db, dev);
    await expect(authenticateApiKey(db, dev.apiKey)).resolves.toMatchObject({ tenantId: 'dev', scopes: API_KEY_SCOPES });
  });
});
