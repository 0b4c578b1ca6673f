import { hash, randomBytes, randomUUID } from 'node:crypto';
import { and, asc, eq, gt, isNull, lt, or, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Db } from './client';
import { apiKeys } from './schema';

/**
 * `admin` manages its own tenant (connections, keys, backups, Bull Board of its jobs); `fleet:admin`
 * is for the fleet's operators and reaches every tenant.
 */
export const API_KEY_SCOPES = ['jobs:write', 'jobs:read', 'admin', 'fleet:admin'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

export interface ApiKeyPrincipal {
  keyId: string;
  tenantId: string;
  scopes: readonly ApiKeyScope[];
  /** Past this instant the key authenticates nothing (a cached principal is checked against it); null: never. */
  expiresAt: Date | null;
}

/** A key as listed: what it is and how it has been used, never its hash. */
export interface ApiKeyInfo {
  id: string;
  tenantId: string;
  name: string;
  prefix: string;
  scopes: string[];
  createdAt: Date;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
  replacedBy: string | null;
}

/** A key just made: its listing and, this once, the plaintext. */
export type CreatedApiKey = ApiKeyInfo & { key: string };

/** Why a key change was refused; the API answers `status`, the CLI prints the message. */
export class ApiKeyError extends Error {
  override readonly name = 'ApiKeyError';
  constructor(
    readonly status: 404 | 409,
    message: string,
  ) {
    super(message);
  }
}

// Non-secret and short, so operators can tell keys apart in listings without seeing them.
const KEY_PREFIX_LENGTH = 8;
/** The longest lifetime a key may be given; a key without expiry is a separate, explicit choice. */
const MAX_KEY_LIFETIME_MS = 5 * 366 * 24 * 3_600_000;
/** How long a rotated key keeps working by default: a day to roll the new one out everywhere. */
export const DEFAULT_ROTATION_GRACE_SECONDS = 24 * 3600;
const MAX_ROTATION_GRACE_SECONDS = 30 * 24 * 3600;

// Names end up in listings and terminals: printable characters and inner spaces only (no control
// or format characters, so no terminal escapes or bidi overrides).
const PRINTABLE = String.raw`\p{L}\p{M}\p{N}\p{P}\p{S}`;
/** A key's name, as the API and the CLI accept it. */
export const apiKeyNameSchema = z
  .string()
  .max(100)
  .regex(new RegExp(`^[${PRINTABLE}](?:[${PRINTABLE} ]*[${PRINTABLE}])?$`, 'u'), 'letters, digits, punctuation and inner spaces (1 to 100)');

/** An expiry a new key may be given: in the future, at most five years ahead. */
export const apiKeyExpirySchema = z
  .date()
  .refine((at) => at.getTime() > Date.now(), 'must be in the future')
  .refine((at) => at.getTime() <= Date.now() + MAX_KEY_LIFETIME_MS, 'must be at most 5 years ahead');

/** How long a rotated key keeps working: 0 revokes it at once, at most 30 days. */
export const rotationGraceSecondsSchema = z.number().int().min(0).max(MAX_ROTATION_GRACE_SECONDS);

const info = {
  id: apiKeys.id,
  tenantId: apiKeys.tenantId,
  name: apiKeys.name,
  prefix: apiKeys.keyPrefix,
  scopes: apiKeys.scopes,
  createdAt: apiKeys.createdAt,
  lastUsedAt: apiKeys.lastUsedAt,
  expiresAt: apiKeys.expiresAt,
  revokedAt: apiKeys.revokedAt,
  replacedBy: apiKeys.replacedBy,
};

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** What is stored of a key: its SHA-256, hex. The one-shot hash: the API takes it on every request (its key cache). */
export function hashApiKey(plaintext: string): string {
  return hash('sha256', plaintext, 'hex');
}

function isScope(value: string): value is ApiKeyScope {
  return (API_KEY_SCOPES as readonly string[]).includes(value);
}

/** Why a key may not be rotated (it no longer works, or already has a successor), or undefined. */
function whyNotRotatable(key: ApiKeyInfo, now: Date): string | undefined {
  if (key.revokedAt !== null) return 'revoked';
  if (key.replacedBy !== null) return `already replaced by ${key.replacedBy}`;
  if (key.expiresAt !== null && key.expiresAt <= now) return 'expired';
  return undefined;
}

/**
 * Stores a new API key (only its sha256 and prefix) and returns the plaintext once.
 * `key` defaults to `jf_` + 32 random bytes (base64url). Passing a `key` that already exists for the
 * same tenant returns that key (seeding is idempotent); one owned by another tenant is refused.
 */
export async function createApiKey(
  db: Db | Tx,
  input: { tenantId: string; name: string; scopes: readonly ApiKeyScope[]; key?: string; expiresAt?: Date | null },
): Promise<CreatedApiKey> {
  const key = input.key ?? `jf_${randomBytes(32).toString('base64url')}`;
  const keyHash = hashApiKey(key);
  const inserted = await db
    .insert(apiKeys)
    .values({
      id: randomUUID(),
      tenantId: input.tenantId,
      keyHash,
      keyPrefix: key.slice(0, KEY_PREFIX_LENGTH),
      name: input.name,
      scopes: [...input.scopes],
      expiresAt: input.expiresAt ?? null,
    })
    .onConflictDoNothing({ target: apiKeys.keyHash })
    .returning(info);
  const row =
    inserted[0] ??
    (await db.select(info).from(apiKeys).where(and(eq(apiKeys.keyHash, keyHash), eq(apiKeys.tenantId, input.tenantId))))[0];
  if (row === undefined) throw new Error('createApiKey: this key already belongs to another tenant');
  return { ...row, key };
}

/** Every key of the tenant, oldest first, revoked and expired ones included. */
export function listApiKeys(db: Db, tenantId: string): Promise<ApiKeyInfo[]> {
  return db.select(info).from(apiKeys).where(eq(apiKeys.tenantId, tenantId)).orderBy(asc(apiKeys.createdAt), asc(apiKeys.id));
}

/** The key, or null when there is none with this id (or, given `tenantId`, none of that tenant). */
export async function findApiKey(db: Db, id: string, tenantId?: string): Promise<ApiKeyInfo | null> {
  const rows = await db
    .select(info)
    .from(apiKeys)
    .where(and(eq(apiKeys.id, id), tenantId === undefined ? undefined : eq(apiKeys.tenantId, tenantId)))
    .limit(1);
  return rows[0] ?? null;
}

/** The key's tenant, scopes and expiry, or null when the key is unknown, revoked or expired. */
export async function authenticateApiKey(db: Db, plaintextKey: string): Promise<ApiKeyPrincipal | null> {
  const rows = await db
    .select({ keyId: apiKeys.id, tenantId: apiKeys.tenantId, scopes: apiKeys.scopes, expiresAt: apiKeys.expiresAt })
    .from(apiKeys)
    .where(
      and(
        eq(apiKeys.keyHash, hashApiKey(plaintextKey)),
        isNull(apiKeys.revokedAt),
        or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, new Date())),
      ),
    )
    .limit(1);
  const row = rows[0];
  if (row === undefined) return null;
  // Unknown scope strings (from a newer release, or typed by hand) grant nothing.
  return { ...row, scopes: row.scopes.filter(isScope) };
}

/**
 * Records that the key was used, unless that was recorded less than a minute ago (by this process
 * or any other): replicas that each see the key write about once a minute between them.
 * Returns whether it wrote.
 */
export async function recordApiKeyUse(db: Db, id: string): Promise<boolean> {
  const rows = await db
    .update(apiKeys)
    .set({ lastUsedAt: sql`now()` })
    .where(and(eq(apiKeys.id, id), or(isNull(apiKeys.lastUsedAt), lt(apiKeys.lastUsedAt, sql`now() - interval '1 minute'`))))
    .returning({ id: apiKeys.id });
  return rows.length > 0;
}

/**
 * Replaces an active key, in one transaction: a new key with the same tenant, name, scopes and
 * lifetime (a 90-day key gives another 90 days from now), and the old one marked `replacedBy` and
 * left working for `graceSeconds` more (never past its own expiry; 0 revokes it now). A revoked,
 * expired or already replaced key is refused (409): its successor, if any, is the one to rotate.
 */
export function rotateApiKey(db: Db, id: string, graceSeconds = DEFAULT_ROTATION_GRACE_SECONDS): Promise<{ key: CreatedApiKey; previous: ApiKeyInfo }> {
  return db.transaction(async (tx) => {
    // Locked, so two rotations of one key cannot both make a successor.
    const [old] = await tx.select(info).from(apiKeys).where(eq(apiKeys.id, id)).for('update');
    if (old === undefined) throw new ApiKeyError(404, `No API key ${id}`);
    const now = new Date();
    const reason = whyNotRotatable(old, now);
    if (reason !== undefined) throw new ApiKeyError(409, `API key ${id} is ${reason}; only an active key can be rotated`);

    const lifetimeMs = old.expiresAt === null ? undefined : old.expiresAt.getTime() - old.createdAt.getTime();
    const key = await createApiKey(tx, {
      tenantId: old.tenantId,
      name: old.name,
      scopes: old.scopes.filter(isScope),
      expiresAt: lifetimeMs === undefined ? null : new Date(now.getTime() + lifetimeMs),
    });
    const graceEnd = new Date(now.getTime() + graceSeconds * 1000);
    const retire =
      graceSeconds === 0
        ? { revokedAt: now }
        : { expiresAt: old.expiresAt !== null && old.expiresAt < graceEnd ? old.expiresAt : graceEnd };
    const [previous] = await tx
      .update(apiKeys)
      .set({ ...retire, replacedBy: key.id })
      .where(eq(apiKeys.id, id))
      .returning(info);
    if (previous === undefined) throw new Error(`rotateApiKey: key ${id} vanished while locked`);
    return { key, previous };
  });
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
