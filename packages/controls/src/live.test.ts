import { featureFlagRepository, fleetSwitchRepository } from '@jobfleet/db';
import { createLogger } from '@jobfleet/observability';
import { createRedisConnection, createSubscriberConnection, type RedisClient } from '@jobfleet/queue';
import { createTestDatabase, type TestDatabase } from '../../../tests/support/db';
import { waitFor } from '../../../tests/support/processes';
import { TEST_REDIS_URL, uniquePrefix } from '../../../tests/support/redis';
import { openFlagClient } from './flag-client';
import { createFleetControls, type FleetControls } from './live';

const OPERATOR = { actor: 'operator:test', actorTenantId: null };
// The bound: a change reaches every process within 5 s.
const PROPAGATION_MS = 5000;
// Long enough that only the Redis message can bring a change within PROPAGATION_MS.
const NO_POLL_MS = 60_000;

describe('fleet controls across processes', () => {
  let testDb: TestDatabase;
  let redis: RedisClient;
  const prefix = uniquePrefix('controls');
  const logger = createLogger({ level: 'silent', serviceName: 'controls' });
  const opened: FleetControls[] = [];

  async function open(pollMs: number): Promise<{ controls: FleetControls; subscriber: RedisClient }> {
    const subscriber = createSubscriberConnection(redis, 'controls-test');
    const controls = createFleetControls({ db: testDb.database.db, redis, subscriber, prefix, pollMs, logger });
    await controls.start();
    opened.push(controls);
    return { controls, subscriber };
  }

  beforeAll(async () => {
    testDb = await createTestDatabase({ tenants: ['acme', 'globex'] });
    redis = createRedisConnection(TEST_REDIS_URL, 'worker', { name: 'controls-test' });
  });
  afterAll(async () => {
    for (const controls of opened) await controls.close();
    redis.disconnect();
    await testDb.drop();
  });

  it('brings a change to another process by its Redis message, long before any poll', async () => {
    const { controls: here } = await open(NO_POLL_MS);
    const { controls: there } = await open(NO_POLL_MS);
    expect(there.current().intakeClosed('calendar-sync', 'acme')).toBeUndefined();

    await fleetSwitchRepository.set(testDb.database.db, { scope: 'tenant', subject: 'acme', intakeOff: true, reason: 'abuse' }, OPERATOR);
    await here.announce();
    await waitFor(() => there.current().intakeClosed('calendar-sync', 'acme'), { timeoutMs: PROPAGATION_MS, what: 'the switch over pub/sub' });
    expect(there.current().intakeClosed('calendar-sync', 'acme')).toEqual({ scope: 'tenant', subject: 'acme', reason: 'abuse' });
    expect(there.current().intakeClosed('calendar-sync', 'globex')).toBeUndefined();
    expect(there.current().processingPaused('calendar-sync', 'acme')).toBeUndefined();
  });

  it('brings a change whose message was lost by polling', async () => {
    const { controls: polling, subscriber } = await open(1000);
    const { controls: listening } = await open(NO_POLL_MS);
    // A subscriber gone (a network cut): this process hears no message any more.
    subscriber.disconnect();
    // Written without announcing it, as a publisher that lost its Redis would.
    await fleetSwitchRepository.set(testDb.database.db, { scope: 'kind', subject: 'afip-sync', processingPaused: true }, OPERATOR);
    await waitFor(() => polling.current().processingPaused('afip-sync', 'globex'), { timeoutMs: PROPAGATION_MS, what: 'the switch by polling' });
    // No message was sent: the process that only listens has not seen it.
    expect(listening.current().processingPaused('afip-sync', 'globex')).toBeUndefined();
  });

  it('serves flags through OpenFeature: the rollout variant to listed tenants, the default to others, the kill variant when off', async () => {
    const { controls } = await open(NO_POLL_MS);
    const definition = {
      key: 'test.new-path',
      description: '',
      enabled: true,
      variants: { on: true, off: false, label: 'x' },
      rolloutVariant: 'on',
      defaultVariant: 'off',
      killVariant: 'off',
      tenants: ['acme'],
      percentage: 0,
    };
    await featureFlagRepository.put(testDb.database.db, definition, OPERATOR);
    await controls.refresh();
    const flags = await openFlagClient(controls);
    try {
      expect(await flags.client.getBooleanDetails('test.new-path', false, { targetingKey: 'acme' })).toMatchObject({ value: true, variant: 'on', reason: 'TARGETING_MATCH' });
      expect(await flags.client.getBooleanDetails('test.new-path', true, { targetingKey: 'globex' })).toMatchObject({ value: false, variant: 'off', reason: 'DEFAULT' });
      expect(await flags.client.getBooleanDetails('no.such-flag', true, { targetingKey: 'acme' })).toMatchObject({ value: true, errorCode: 'FLAG_NOT_FOUND' });
      expect(await flags.client.getStringDetails('test.new-path', 'fallback', { targetingKey: 'acme' })).toMatchObject({ value: 'fallback', errorCode: 'TYPE_MISMATCH' });

      await featureFlagRepository.put(testDb.database.db, { ...definition, enabled: false }, OPERATOR);
      await controls.refresh();
      expect(await flags.client.getBooleanDetails('test.new-path', true, { targetingKey: 'acme' })).toMatchObject({ value: false, variant: 'off', reason: 'DISABLED' });
    } finally {
      await flags.close();
    }
  });
});
