import { eq, sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import {
  ApiKeyError,
  apiKeyExpirySchema,
  apiKeyNameSchema,
  authenticateApiKey,
  createApiKey,
  findApiKey,
  listApiKeys,
  recordApiKeyUse,
  revokeApiKey,
  rotateApiKey,
} from './api-keys';
import { schema } from './index';

const DAY_MS = 24 * 3_600_000;

describe('API keys', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme', 'globex', 'initech'] });
  });
  afterAll(async () => {
    await testDb.drop();
  });
  const db = () => testDb.database.db;
  const expireNow = (id: string) => db().update(schema.apiKeys).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(schema.apiKeys.id, id));

  it('returns a generated key once and stores only its hash and prefix', async () => {
    const created = await createApiKey(db(), { tenantId: 'acme', name: 'ci', scopes: ['jobs:write'] });
    expect(created.key).toMatch(/^jf_[\w-]{43}$/);
    const [row] = await db().select().from(schema.apiKeys).where(eq(schema.apiKeys.id, created.id));
    expect(row?.keyPrefix).toBe(created.key.slice(0, 8));
    expect(row?.keyHash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toContain(created.key);
  });

  it('authenticates a key to its tenant, scopes and expiry, and refuses unknown and revoked keys', async () => {
    const created = await createApiKey(db(), { tenantId: 'acme', name: 'reader', scopes: ['jobs:read', 'admin'] });
    await expect(authenticateApiKey(db(), created.key)).resolves.toEqual({
      keyId: created.id,
      tenantId: 'acme',
      scopes: ['jobs:read', 'admin'],
      expiresAt: null,
    });
    await expect(authenticateApiKey(db(), `${created.key}x`)).resolves.toBeNull();
    await expect(revokeApiKey(db(), created.id)).resolves.toBe(true);
    await expect(revokeApiKey(db(), created.id)).resolves.toBe(false);
    await expect(authenticateApiKey(db(), created.key)).resolves.toBeNull();
  });

  it('refuses a key once its expiry has passed', async () => {
    const expiresAt = new Date(Date.now() + DAY_MS);
    const created = await createApiKey(db(), { tenantId: 'acme', name: 'temporary', scopes: ['jobs:read'], expiresAt });
    expect(created.expiresAt).toEqual(expiresAt);
    await expect(authenticateApiKey(db(), created.key)).resolves.toMatchObject({ keyId: created.id, expiresAt });
    await expireNow(created.id);
    await expect(authenticateApiKey(db(), created.key)).resolves.toBeNull();
  });

  it('seeding a given key twice is idempotent, but another tenant cannot claim it', async () => {
    const first = await createApiKey(db(), { tenantId: 'acme', name: 'seed', scopes: ['jobs:read'], key: 'jf_seeded_key_0001' });
    const again = await createApiKey(db(), { tenantId: 'acme', name: 'seed', scopes: ['jobs:read'], key: 'jf_seeded_key_0001' });
    expect(again).toEqual(first);
    await expect(createApiKey(db(), { tenantId: 'globex', name: 'seed', scopes: ['admin'], key: 'jf_seeded_key_0001' })).rejects.toThrow(/another tenant/);
  });

  it('ignores scopes it does not know', async () => {
    const created = await createApiKey(db(), { tenantId: 'acme', name: 'odd', scopes: ['jobs:read'] });
    await db().update(schema.apiKeys).set({ scopes: ['jobs:read', 'root'] }).where(eq(schema.apiKeys.id, created.id));
    expect((await authenticateApiKey(db(), created.key))?.scopes).toEqual(['jobs:read']);
  });

  it("lists a tenant's keys oldest first, without hashes or plaintext, and finds one only within its tenant", async () => {
    const first = await createApiKey(db(), { tenantId: 'initech', name: 'first', scopes: ['jobs:read'] });
    const second = await createApiKey(db(), { tenantId: 'initech', name: 'second', scopes: ['jobs:write'], expiresAt: new Date(Date.now() + DAY_MS) });
    await revokeApiKey(db(), first.id);
    const listed = await listApiKeys(db(), 'initech');
    expect(listed.map((k) => k.id)).toEqual([first.id, second.id]);
    expect(listed[0]).toEqual({
      id: first.id,
      tenantId: 'initech',
      name: 'first',
      prefix: first.key.slice(0, 8),
      scopes: ['jobs:read'],
      createdAt: expect.any(Date),
      lastUsedAt: null,
      expiresAt: null,
      revokedAt: expect.any(Date),
      replacedBy: null,
    });
    expect(listed[1]?.expiresAt).toEqual(second.expiresAt);
    expect(JSON.stringify(listed)).not.toMatch(/keyHash|key_hash/);
    for (const key of [first.key, second.key]) expect(JSON.stringify(listed)).not.toContain(key);

    await expect(findApiKey(db(), second.id, 'initech')).resolves.toMatchObject({ id: second.id });
    await expect(findApiKey(db(), second.id, 'globex')).resolves.toBeNull();
    await expect(findApiKey(db(), second.id)).resolves.toMatchObject({ tenantId: 'initech' });
  });

  it('rotates a key: a successor with the same tenant, name, scopes and lifetime; the old one works through the grace', async () => {
    const old = await createApiKey(db(), { tenantId: 'globex', name: 'deploy', scopes: ['jobs:write', 'jobs:read'], expiresAt: new Date(Date.now() + 90 * DAY_MS) });
    const before = Date.now();
    const { key, previous } = await rotateApiKey(db(), old.id, 3600);

    expect(key).toMatchObject({ tenantId: 'globex', name: 'deploy', scopes: ['jobs:write', 'jobs:read'], revokedAt: null, replacedBy: null });
    expect(key.key).not.toBe(old.key);
    const lifetime = (old.expiresAt?.getTime() ?? 0) - old.createdAt.getTime();
    expect(Math.abs((key.expiresAt?.getTime() ?? 0) - (before + lifetime))).toBeLessThan(60_000);

    expect(previous).toMatchObject({ id: old.id, replacedBy: key.id, revokedAt: null });
    expect(Math.abs((previous.expiresAt?.getTime() ?? 0) - (before + 3600_000))).toBeLessThan(60_000);
    await expect(authenticateApiKey(db(), old.key)).resolves.toMatchObject({ keyId: old.id });
    await expect(authenticateApiKey(db(), key.key)).resolves.toMatchObject({ keyId: key.id, tenantId: 'globex', scopes: ['jobs:write', 'jobs:read'] });

    // A replaced key has its successor; rotating it again would make a second one.
    await expect(rotateApiKey(db(), old.id)).rejects.toMatchObject({ status: 409, message: expect.stringContaining(`already replaced by ${key.id}`) });
  });

  it('a grace of 0 revokes the old key now, and a grace never extends an earlier expiry', async () => {
    const now = await createApiKey(db(), { tenantId: 'globex', name: 'leaked', scopes: ['jobs:read'] });
    const { previous } = await rotateApiKey(db(), now.id, 0);
    expect(previous.revokedAt).toEqual(expect.any(Date));
    await expect(authenticateApiKey(db(), now.key)).resolves.toBeNull();

    const soon = new Date(Date.now() + 600_000);
    const short = await createApiKey(db(), { tenantId: 'globex', name: 'short', scopes: ['jobs:read'], expiresAt: soon });
    expect((await rotateApiKey(db(), short.id)).previous.expiresAt).toEqual(soon);
  });

  it('refuses to rotate an unknown, revoked or expired key', async () => {
    await expect(rotateApiKey(db(), 'no-such-key')).rejects.toEqual(new ApiKeyError(404, 'No API key no-such-key'));
    const revoked = await createApiKey(db(), { tenantId: 'globex', name: 'revoked', scopes: ['jobs:read'] });
    await revokeApiKey(db(), revoked.id);
    await expect(rotateApiKey(db(), revoked.id)).rejects.toMatchObject({ status: 409, message: expect.stringContaining('is revoked') });
    const expired = await createApiKey(db(), { tenantId: 'globex', name: 'expired', scopes: ['jobs:read'], expiresAt: new Date(Date.now() + DAY_MS) });
    await expireNow(expired.id);
    await expect(rotateApiKey(db(), expired.id)).rejects.toMatchObject({ status: 409, message: expect.stringContaining('is expired') });
  });

  it('two rotations of one key at once make one successor', async () => {
    const key = await createApiKey(db(), { tenantId: 'globex', name: 'raced', scopes: ['jobs:read'] });
    const results = await Promise.allSettled([rotateApiKey(db(), key.id), rotateApiKey(db(), key.id)]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const successors = (await listApiKeys(db(), 'globex')).filter((k) => k.name === 'raced' && k.id !== key.id);
    expect(successors).toHaveLength(1);
  });

  it('records a use at most once a minute, whoever asks', async () => {
    const key = await createApiKey(db(), { tenantId: 'acme', name: 'busy', scopes: ['jobs:read'] });
    await expect(recordApiKeyUse(db(), key.id)).resolves.toBe(true);
    const first = (await findApiKey(db(), key.id))?.lastUsedAt;
    expect(first).toEqual(expect.any(Date));
    await expect(recordApiKeyUse(db(), key.id)).resolves.toBe(false);
    expect((await findApiKey(db(), key.id))?.lastUsedAt).toEqual(first);

    await db().update(schema.apiKeys).set({ lastUsedAt: sql`now() - interval '61 seconds'` }).where(eq(schema.apiKeys.id, key.id));
    await expect(recordApiKeyUse(db(), key.id)).resolves.toBe(true);
    await expect(recordApiKeyUse(db(), 'no-such-key')).resolves.toBe(false);
  });

  it.each([
    ['ci', true],
    ['deploy bot (staging)', true],
    ['clé-été', true],
    ['', false],
    [' padded', false],
    ['padded ', false],
    ['tab\there', false],
    ['escape\u001b[31m', false],
    ['bidi\u202Eoverride', false],
    ['x'.repeat(101), false],
  ])('a key name %j is accepted: %s', (name, ok) => {
    expect(apiKeyNameSchema.safeParse(name).success).toBe(ok);
  });

  it('an expiry must be in the future and at most five years ahead', () => {
    expect(apiKeyExpirySchema.safeParse(new Date(Date.now() + DAY_MS)).success).toBe(true);
    expect(apiKeyExpirySchema.safeParse(new Date(Date.now() - 1000)).success).toBe(false);
    expect(apiKeyExpirySchema.safeParse(new Date(Date.now() + 6 * 366 * DAY_MS)).success).toBe(false);
  });
});
