import { authenticateApiKey, findApiKey } from '@jobfleet/db';
import { sql } from 'drizzle-orm';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startEntryPoint, type RunningProcess } from '../support/processes';

// Each test runs the CLI (a fresh tsx process, seconds each on a busy machine) up to four times.
const CLI_TEST_TIMEOUT_MS = 120_000;
const DAY_MS = 24 * 3_600_000;
const countKeys = sql`select count(*)::int as n from api_keys`;

/** The key id and plaintext the CLI printed. */
function printedKey(output: string): { id: string; key: string } {
  const id = /^key id (\S+)$/m.exec(output)?.[1];
  const key = /^api key (\S+)$/m.exec(output)?.[1];
  if (id === undefined || key === undefined) throw new Error(`no key in the output:\n${output}`);
  return { id, key };
}

// `npm run jobfleet -- key …` as an operator runs it: a real process against this file's database.
describe('API keys CLI', () => {
  const running = new Set<RunningProcess>();
  let testDb: TestDatabase;
  let env: Record<string, string>;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme'] });
    env = { NODE_ENV: 'test', LOG_LEVEL: 'warn', DATABASE_URL: testDb.url };
  });
  afterAll(async () => {
    for (const child of running) await child.kill('SIGKILL');
    await testDb.drop();
  });

  async function cli(args: string[]): Promise<{ code: number | null; output: string }> {
    const child = startEntryPoint('apps/standalone/src/cli.ts', env, args);
    running.add(child);
    const { code } = await child.exited;
    running.delete(child);
    return { code, output: child.output() };
  }
  const db = () => testDb.database.db;

  let created: { id: string; key: string };

  it('key create --expires 90d prints the key once, with its expiry, and list shows it without the key', async () => {
    const answer = await cli(['key', 'create', 'acme', '--scopes', 'jobs:read', '--name', 'ci bot', '--expires', '90d']);
    expect(answer.code).toBe(0);
    created = printedKey(answer.output);
    expect(answer.output).toMatch(/^expires \d{4}-\d{2}-\d{2}T/m);
    const row = await findApiKey(db(), created.id);
    expect(row).toMatchObject({ tenantId: 'acme', name: 'ci bot', scopes: ['jobs:read'] });
    expect(Math.abs((row?.expiresAt?.getTime() ?? 0) - (Date.now() + 90 * DAY_MS))).toBeLessThan(5 * 60_000);
    await expect(authenticateApiKey(db(), created.key)).resolves.toMatchObject({ keyId: created.id, tenantId: 'acme' });

    const listed = await cli(['key', 'list', 'acme']);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.output)).toEqual([
      expect.objectContaining({ id: created.id, name: 'ci bot', prefix: created.key.slice(0, 8), scopes: ['jobs:read'], revokedAt: null, replacedBy: null }),
    ]);
    expect(listed.output).not.toContain(created.key);
    expect(listed.output).not.toMatch(/hash/i);
  }, CLI_TEST_TIMEOUT_MS);

  it('key rotate --grace 0 prints a successor and revokes the old key; rotating it again exits 1', async () => {
    const rotated = await cli(['key', 'rotate', created.id, '--grace', '0']);
    expect(rotated.code).toBe(0);
    const successor = printedKey(rotated.output);
    expect(rotated.output).toContain(`replaces ${created.id}, which is revoked`);
    await expect(authenticateApiKey(db(), created.key)).resolves.toBeNull();
    await expect(authenticateApiKey(db(), successor.key)).resolves.toMatchObject({ keyId: successor.id, scopes: ['jobs:read'] });
    expect(await findApiKey(db(), created.id)).toMatchObject({ replacedBy: successor.id, revokedAt: expect.any(Date) });

    const again = await cli(['key', 'rotate', created.id]);
    expect(again.code).toBe(1);
    expect(again.output).toContain('is revoked; only an active key can be rotated');

    // The default grace keeps the old key for a day.
    const graced = await cli(['key', 'rotate', successor.id]);
    expect(graced.code).toBe(0);
    expect(graced.output).toMatch(new RegExp(`replaces ${successor.id}, which works until \\S+`));
    await expect(authenticateApiKey(db(), successor.key)).resolves.toMatchObject({ keyId: successor.id });
    expect(Math.abs(((await findApiKey(db(), successor.id))?.expiresAt?.getTime() ?? 0) - (Date.now() + DAY_MS))).toBeLessThan(5 * 60_000);
  }, CLI_TEST_TIMEOUT_MS);

  it.each([
    ['an expiry in the past', ['key', 'create', 'acme', '--expires', '2020-01-01T00:00:00Z'], '--expires: must be in the future'],
    ['an expiry that is neither instant nor duration', ['key', 'create', 'acme', '--expires', '3 weeks'], '--expires: an instant with offset'],
    ['a name with a control character', ['key', 'create', 'acme', '--name', 'bell\u0007'], '--name: letters, digits'],
    ['an unknown tenant', ['key', 'create', 'nobody'], 'no tenant nobody'],
    ['a fractional grace', ['key', 'rotate', 'some-key', '--grace', '1.5'], '--grace: whole seconds'],
  ])('refuses %s: exit 2 with the reason and the usage, nothing stored', async (_what, args, message) => {
    const before = (await testDb.database.rows(countKeys))[0];
    const answer = await cli(args);
    expect(answer.code).toBe(2);
    expect(answer.output).toContain(message);
    expect(answer.output).toContain('usage: npm run jobfleet');
    expect((await testDb.database.rows(countKeys))[0]).toEqual(before);
  }, CLI_TEST_TIMEOUT_MS);
});
