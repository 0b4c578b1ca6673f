import { tenantLimitsRepository } from '@jobfleet/db';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startEntryPoint, type RunningProcess } from '../support/processes';

// Each test runs the CLI (a fresh tsx process, seconds each on a busy machine) up to four times.
const CLI_TEST_TIMEOUT_MS = 120_000;

// `npm run jobfleet -- tenant tier|limits …` as an operator runs it: a real process against this file's database.
describe('tenant tier and limits CLI', () => {
  const running = new Set<RunningProcess>();
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme'] });
  });
  afterAll(async () => {
    for (const child of running) await child.kill('SIGKILL');
    await testDb.drop();
  });

  async function cli(args: string[]): Promise<{ code: number | null; output: string }> {
    const child = startEntryPoint('apps/standalone/src/cli.ts', { NODE_ENV: 'test', LOG_LEVEL: 'warn', DATABASE_URL: testDb.url }, args);
    running.add(child);
    const { code } = await child.exited;
    running.delete(child);
    return { code, output: child.output() };
  }
  const stored = () => tenantLimitsRepository.read(testDb.database.db, 'acme');

  it('tenant tier sets the tier and prints the effective limits; "default" goes back to the default tier', async () => {
    const set = await cli(['tenant', 'tier', 'acme', 'free']);
    expect(set.code).toBe(0);
    expect(JSON.parse(set.output)).toMatchObject({
      tenantId: 'acme',
      tier: 'free',
      overrides: {},
      effective: { tier: 'free', requestsPerMinute: 120, keyRequestsPerMinute: 120, kinds: { 'calendar-sync': { jobsPerDay: 1000, maxWaitingJobs: 100, maxRunningJobs: 2 } } },
    });
    expect(await stored()).toEqual({ tier: 'free', overrides: {} });

    const reset = await cli(['tenant', 'tier', 'acme', 'default']);
    expect(reset.code).toBe(0);
    expect(JSON.parse(reset.output)).toMatchObject({ tier: null, effective: { tier: 'standard', requestsPerMinute: 3000 } });
  }, CLI_TEST_TIMEOUT_MS);

  it('refuses a tier that is not configured and an unknown tenant: exit 2 with the reason, nothing stored', async () => {
    const gold = await cli(['tenant', 'tier', 'acme', 'gold']);
    expect(gold.code).toBe(2);
    expect(gold.output).toContain('tier: not a configured tier (known: free, standard, enterprise)');
    expect(gold.output).toContain('usage: npm run jobfleet');
    const nobody = await cli(['tenant', 'tier', 'nobody', 'free']);
    expect(nobody.code).toBe(2);
    expect(nobody.output).toContain('no tenant nobody');
    expect(await stored()).toEqual({ tier: null, overrides: {} });
  }, CLI_TEST_TIMEOUT_MS);

  it('tenant limits --set replaces the overrides, plain tenant limits prints them, --clear drops them', async () => {
    const overrides = { requestsPerMinute: 600, kinds: { 'afip-sync': { jobsPerDay: 500 } } };
    const set = await cli(['tenant', 'limits', 'acme', '--set', JSON.stringify(overrides)]);
    expect(set.code).toBe(0);
    expect(JSON.parse(set.output)).toMatchObject({
      overrides,
      effective: { requestsPerMinute: 600, keyRequestsPerMinute: 3000, kinds: { 'afip-sync': { jobsPerDay: 500 }, backup: { jobsPerDay: 100_000 } } },
    });
    const shown = await cli(['tenant', 'limits', 'acme']);
    expect(JSON.parse(shown.output)).toEqual(JSON.parse(set.output));

    const cleared = await cli(['tenant', 'limits', 'acme', '--clear']);
    expect(cleared.code).toBe(0);
    expect(JSON.parse(cleared.output)).toMatchObject({ overrides: {}, effective: { requestsPerMinute: 3000 } });
  }, CLI_TEST_TIMEOUT_MS);

  it('refuses overrides that do not validate, naming each field, and JSON that does not parse', async () => {
    const bad = await cli(['tenant', 'limits', 'acme', '--set', '{"requestsPerMinute":0,"burst":5,"kinds":{"no-such-kind":{"jobsPerDay":1}}}']);
    expect(bad.code).toBe(2);
    expect(bad.output).toContain('overrides.requestsPerMinute: ');
    expect(bad.output).toContain('overrides.kinds.no-such-kind: not a job kind');
    expect(bad.output).toMatch(/overrides: Unrecognized key: "burst"/);
    const notJson = await cli(['tenant', 'limits', 'acme', '--set', '{requestsPerMinute: 5}']);
    expect(notJson.code).toBe(2);
    expect(notJson.output).toContain('--set: not valid JSON');
    expect(await stored()).toEqual({ tier: null, overrides: {} });
  }, CLI_TEST_TIMEOUT_MS);
});
