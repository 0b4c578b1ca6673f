import { fleetControlsChannel } from '@jobfleet/controls';
import { adminAuditRepository, featureFlagRepository, fleetSwitchRepository } from '@jobfleet/db';
import { createRedisConnection } from '@jobfleet/queue';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startEntryPoint, type RunningProcess } from '../support/processes';
import { TEST_REDIS_URL, uniquePrefix } from '../support/redis';

const CLI_TEST_TIMEOUT_MS = 120_000;

// `npm run jobfleet -- switch …|flag …` as an operator runs it: a real process against this file's database and Redis.
describe('switch and flag CLI', () => {
  const running = new Set<RunningProcess>();
  const prefix = uniquePrefix('cli-switches');
  const subscriber = createRedisConnection(TEST_REDIS_URL, 'worker', { name: 'cli-switches' });
  const announcements: string[] = [];
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme'] });
    subscriber.on('message', (channel: string) => announcements.push(channel));
    await subscriber.subscribe(fleetControlsChannel(prefix));
  });
  afterAll(async () => {
    for (const child of running) await child.kill('SIGKILL');
    subscriber.disconnect();
    await testDb.drop();
  });

  async function cli(args: string[]): Promise<{ code: number | null; output: string }> {
    const child = startEntryPoint('apps/standalone/src/cli.ts', { NODE_ENV: 'test', LOG_LEVEL: 'warn', DATABASE_URL: testDb.url, REDIS_URL: TEST_REDIS_URL, QUEUE_PREFIX: prefix }, args);
    running.add(child);
    const { code } = await child.exited;
    running.delete(child);
    return { code, output: child.output() };
  }

  it('switch set stores the switch, audits it as the CLI user and announces it; a bad value changes nothing', async () => {
    const set = await cli(['switch', 'set', 'tenant', 'acme', '--processing', 'paused', '--reason', 'runaway producer']);
    expect(set.code).toBe(0);
    expect(JSON.parse(set.output)).toMatchObject({ scope: 'tenant', subject: 'acme', intakeOff: false, processingPaused: true, reason: 'runaway producer' });
    expect(await fleetSwitchRepository.list(testDb.database.db)).toMatchObject([{ subject: 'acme', processingPaused: true }]);
    const [audit] = await adminAuditRepository.list(testDb.database.db, { action: 'switch.set', limit: 5 });
    expect(audit?.actor).toMatch(/^cli:/);
    expect(announcements).toEqual([fleetControlsChannel(prefix)]);

    const bad = await cli(['switch', 'set', 'kind', 'no-such-kind', '--intake', 'off']);
    expect(bad.code).toBe(2);
    expect(bad.output).toContain('subject: not a job kind');
    const badValue = await cli(['switch', 'set', 'kind', 'backup', '--intake', 'closed']);
    expect(badValue.code).toBe(2);
    expect(badValue.output).toContain('--intake: on or off');
    expect(await fleetSwitchRepository.list(testDb.database.db)).toHaveLength(1);
  }, CLI_TEST_TIMEOUT_MS);

  it('flag set creates a flag and flag kill turns it off for everyone', async () => {
    const definition = { enabled: true, variants: { on: true, off: false }, rolloutVariant: 'on', defaultVariant: 'off', killVariant: 'off', percentage: 10 };
    const set = await cli(['flag', 'set', 'calendar-sync.minimal-patch', '--set', JSON.stringify(definition)]);
    expect(set.code).toBe(0);
    expect(JSON.parse(set.output)).toMatchObject({ key: 'calendar-sync.minimal-patch', enabled: true, percentage: 10, tenants: [] });
    const kill = await cli(['flag', 'kill', 'calendar-sync.minimal-patch']);
    expect(kill.code).toBe(0);
    expect(await featureFlagRepository.find(testDb.database.db, 'calendar-sync.minimal-patch')).toMatchObject({ enabled: false, percentage: 10, updatedBy: expect.stringMatching(/^cli:/) });
    expect((await adminAuditRepository.list(testDb.database.db, { action: 'flag.set', limit: 5 })).map((row) => (row.detail.after as { enabled: boolean }).enabled)).toEqual([false, true]);
  }, CLI_TEST_TIMEOUT_MS);
});
