import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { and, eq, isNull } from 'drizzle-orm';
import type { Db } from './client';
import { apiKeys, tenants } from './schema';

/**
 * `admin` manages its own tenant (connections, backups, Bull Board of its jobs); `fleet:admin` is
 * for the fleet's operators and reaches every tenant.
 */
export const API_KEY_SCOPES = ['jobs:write', 'jobs:read', 'admin', 'fleet:admin'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

export interface ApiKeyPrincipal {
  keyId: string;
  tenantId: string;
  scopes: readonly ApiKeyScope[];
}

// Non-secret and short, so operators can tell keys apart in listings without seeing them.
const KEY_PREFIX_LENGTH = 8;

function hashKey(plaintext: string): string {
  return createHash('sha256').update(plaintext, 'utf8').digest('hex');
}

function isScope(value: string): value is ApiKeyScope {
  return (API_KEY_SCOPES as readonly string[]).includes(value);
}

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

/**
 * Stores a new API key (only its sha256 and prefix) and returns the plaintext once.
 * `key` defaults to `jf_` + 32 random bytes (base64url). Passing a `key` that already exists for the
 * same tenant returns that key's id (seeding is idempotent); one owned by another tenant is refused.
 */
export async function createApiKey(
  db: Db,
  input: { tenantId: string; name: string; scopes: readonly ApiKeyScope[]; key?: string },
): Promise<{ id: string; key: string }> {
  const key = input.key ?? `jf_${randomBytes(32).toString('base64url')}`;
  const keyHash = hashKey(key);
  const inserted = await db
    .insert(apiKeys)
    .values({
      id: randomUUID(),
      tenantId: input.tenantId,
      keyHash,
      keyPrefix: key.slice(0, KEY_PREFIX_LENGTH),
      name: input.name,
      scopes: [...input.scopes],
    })
    .onConflictDoNothing({ target: apiKeys.keyHash })
    .returning({ id: apiKeys.id });
  const id =
    inserted[0]?.id ??
    (
      await db
        .select({ id: apiKeys.id })
        .from(apiKeys)
        .where(and(eq(apiKeys.keyHash, keyHash), eq(apiKeys.tenantId, input.tenantId)))
    )[0]?.id;
  if (id === undefined) throw new Error('createApiKey: this key already belongs to another tenant');
  return { id, key };
}

/** The key's tenant and scopes, or null when the key is unknown or revoked. */
export async function authenticateApiKey(db: Db, plaintextKey: string): Promise<ApiKeyPrincipal | null> {
  const rows = await db
    .select({ keyId: apiKeys.id, tenantId: apiKeys.tenantId, scopes: apiKeys.scopes })
    .from(apiKeys)
    .where(and(eq(apiKeys.keyHash, hashKey(plaintextKey)), isNull(apiKeys.revokedAt)))
    .limit(1);
  const row = rows[0];
  if (row === undefined) return null;
  // Unknown scope strings (from a newer release, or typed by hand) grant nothing.
  return { keyId: row.keyId, tenantId: row.tenantId, scopes: row.scopes.filter(isScope) };
}

/** Revokes the key; returns false when it does not exist or was already revoked. */
export async function revokeApiKey(db: Db, id: string): Promise<boolean> {
  const rows = await db
    .update(apiKeys)
    .set({ revokedAt: new Date() })
    .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
    .returning({ id: apiKeys.id });
  return rows.length > 0;
}

/** Seeds the development tenant and its well-known key with every scope (idempotent; never in production). */
export async function ensureDevTenant(db: Db, dev: { tenantId: string; apiKey: string }): Promise<void> {
  await createTenant(db, { id: dev.tenantId, name: 'Development' });
  await createApiKey(db, { tenantId: dev.tenantId, name: 'development', scopes: API_KEY_SCOPES, key: dev.apiKey });
}
