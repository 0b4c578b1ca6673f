import { eq } from 'drizzle-orm';
import { API_KEY_SCOPES, createApiKey } from './api-keys';
import type { Db } from './client';
import { tenants } from './schema';

export async function tenantExists(db: Db, tenantId: string): Promise<boolean> {
  const rows = await db.select({ id: tenants.id }).from(tenants).where(eq(tenants.id, tenantId)).limit(1);
  return rows.length > 0;
}

/** Creates the tenant, or renames it when it exists (safe to run at every boot). */
export async function createTenant(db: Db, tenant: { id: string; name: string }): Promise<void> {
  await db
    .insert(tenants)
    .values(tenant)
    .onConflictDoUpdate({ target: tenants.id, set: { name: tenant.name } });
}

/** Seeds the development tenant and its well-known key with every scope (idempotent; never in production). */
export async function ensureDevTenant(db: Db, dev: { tenantId: string; apiKey: string }): Promise<void> {
  await createTenant(db, { id: dev.tenantId, name: 'Development' });
  await createApiKey(db, { tenantId: dev.tenantId, name: 'development', scopes: API_KEY_SCOPES, key: dev.apiKey });
}
