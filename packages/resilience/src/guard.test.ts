import { CircuitOpenError, DependencyUnavailableError, PermanentError } from '@jobfleet/contracts';
import { createMetrics, type Metrics } from '@jobfleet/observability';
import { captureLogs, metricValue } from '@jobfleet/observability/testing';
import type { DependencyPolicySettings } from '@jobfleet/config';
import { Redis } from 'ioredis';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../../../tests/support/redis';
import { createFleetFailureCounter } from './fleet-view';
import { createDependencyGuard, type BreakerState } from './guard';

const settings: DependencyPolicySettings = { timeoutMs: 500, retries: 2, retryBaseMs: 5, maxFailures: 3, halfOpenAfterMs: 300, maxConcurrent: 0 };
const outage = () => new DependencyUnavailableError('calendar', '503 Service Unavailable');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('dependency guard', () => {
  let metrics: Metrics;
  let transitions: BreakerState[];
  const guardWith = (overrides: Partial<DependencyPolicySettings> = {}) => {
    metrics = createMetrics();
    transitions = [];
    return createDependencyGuard('calendar', { ...settings, ...overrides }, {
      metrics,
      logger: captureLogs().logger,
      onStateChange: (_dependency, state) => transitions.push(state),
    });
  };

  it('opens after maxFailures consecutive outages, refuses calls without making them, and closes after a good trial', async () => {
    const guard = guardWith();
    let calls = 0;
    const failing = async () => {
      calls++;
      throw outage();
    };
    for (let i = 0; i < 2; i++) await expect(guard.call('insertEvent', failing)).rejects.toBeInstanceOf(DependencyUnavailableError);
    // The failure that opens the breaker is the dependency's, not the call's: reported as a wait, with the failure as cause.
    const tripping = await guard.call('insertEvent', failing).catch((e: unknown) => e);
    expect(tripping).toBeInstanceOf(CircuitOpenError);
    expect((tripping as Error).cause).toBeInstanceOf(DependencyUnavailableError);
    expect(guard.state()).toBe('open');
    expect(await metricValue(metrics, 'circuit_breaker_state', { dependency: 'calendar' })).toBe(2);

    const refused = guard.call('insertEvent', failing);
    await expect(refused).rejects.toBeInstanceOf(CircuitOpenError);
    await expect(refused).rejects.toMatchObject({ dependency: 'calendar', retryable: true, message: expect.stringContaining('calendar unavailable') });
    expect(calls).toBe(3);
    expect(guard.retryAfterMs()).toBeGreaterThan(0);
    expect(guard.retryAfterMs()).toBeLessThanOrEqual(300);

    await sleep(320);
    expect(guard.retryAfterMs()).toBe(0);
    await expect(guard.call('insertEvent', async () => 'ok')).resolves.toBe('ok');
    expect(guard.state()).toBe('closed');
    expect(transitions).toEqual(['open', 'half-open', 'closed']);
    expect(await metricValue(metrics, 'circuit_breaker_transitions_total', { dependency: 'calendar', to: 'open' })).toBe(1);
    expect(await metricValue(metrics, 'dependency_call_duration_seconds_count', { dependency: 'calendar', result: 'rejected' })).toBe(1);
  });

  it('reopens when the half-open trial fails, and reports the failed trial as a wait (its job spends no attempt)', async () => {
    const guard = guardWith({ maxFailures: 1 });
    const causeOf = async (call: Promise<unknown>) => ((await call.catch((e: unknown) => e)) as Error).cause;
    expect(await causeOf(guard.call('getEvent', async () => Promise.reject(outage())))).toMatchObject({ message: 'calendar: 503 Service Unavailable' });
    await sleep(320);
    const trial = guard.call('getEvent', async () => Promise.reject(outage()));
    await expect(trial).rejects.toBeInstanceOf(CircuitOpenError);
    await expect(trial).rejects.toMatchObject({ retryAfterMs: expect.any(Number) });
    expect(await causeOf(trial)).toMatchObject({ message: 'calendar: 503 Service Unavailable' });
    expect(guard.state()).toBe('open');
    expect(transitions).toEqual(['open', 'half-open', 'open']);
  });

  it('does not count refusals of the request itself (4xx) towards opening', async () => {
    const guard = guardWith({ maxFailures: 1 });
    for (let i = 0; i < 5; i++) {
      await expect(guard.call('patchEvent', async () => Promise.reject(new PermanentError('CALENDAR_BAD_REQUEST', '400')))).rejects.toBeInstanceOf(PermanentError);
    }
    expect(guard.state()).toBe('closed');
  });

  it('retries an idempotent call with backoff, never a non-idempotent one', async () => {
    const guard = guardWith({ maxFailures: 10 });
    let reads = 0;
    const flaky = async () => {
      if (++reads < 3) throw outage();
      return 'read';
    };
    await expect(guard.call('getEvent', flaky, { idempotent: true })).resolves.toBe('read');
    expect(reads).toBe(3);

    let writes = 0;
    await expect(guard.call('authorize', async () => (writes++, Promise.reject(outage())))).rejects.toBeInstanceOf(DependencyUnavailableError);
    expect(writes).toBe(1);
  });

  it('bounds each try with the timeout and counts it as a dependency failure', async () => {
    const guard = guardWith({ timeoutMs: 50, maxFailures: 1 });
    const started = Date.now();
    const slow = guard.call('insertEvent', () => sleep(5000));
    // It opened the breaker (maxFailures 1), so it comes back as a wait caused by the timeout.
    const error = await slow.catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CIRCUIT_OPEN' });
    expect((error as Error).cause).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE', message: expect.stringContaining('insertEvent timed out') });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(guard.state()).toBe('open');
    expect(await metricValue(metrics, 'dependency_call_duration_seconds_count', { dependency: 'calendar', operation: 'insertEvent', result: 'timeout' })).toBe(1);
  });

  it('lets at most maxConcurrent calls run at once', async () => {
    const guard = guardWith({ maxConcurrent: 2 });
    let running = 0;
    let most = 0;
    const call = () =>
      guard.call('insertEvent', async () => {
        running++;
        most = Math.max(most, running);
        await sleep(20);
        running--;
      });
    await Promise.all(Array.from({ length: 8 }, call));
    expect(most).toBe(2);
  });

  it('makes a failure wait once the whole fleet has seen maxFailures, before any one breaker opens', async () => {
    const redis = new Redis(TEST_REDIS_URL);
    const prefix = uniquePrefix('fleet-failures');
    try {
      const countFleetFailure = createFleetFailureCounter(redis, prefix);
      const worker = () =>
        createDependencyGuard('afip-wsfe', { ...settings, retries: 0, halfOpenAfterMs: 2000 }, { metrics: createMetrics(), logger: captureLogs().logger, countFleetFailure });
      const [first, second] = [worker(), worker()];
      const failing = async () => Promise.reject(outage());
      // The head of a serialized series, tried by each worker in turn.
      await expect(first.call('lastAuthorized', failing)).rejects.toBeInstanceOf(DependencyUnavailableError);
      await expect(second.call('lastAuthorized', failing)).rejects.toBeInstanceOf(DependencyUnavailableError);
      const third = await first.call('lastAuthorized', failing).catch((e: unknown) => e);
      expect(third).toBeInstanceOf(CircuitOpenError);
      expect(third).toMatchObject({ dependency: 'afip-wsfe', retryAfterMs: 2000 });
      expect([first.state(), second.state()]).toEqual(['closed', 'closed']);
      // The window started with the first failure and expires with it.
      expect(await redis.pttl(`${prefix}:dependency-failures:afip-wsfe`)).toBeLessThanOrEqual(2000);
    } finally {
      await deletePrefix(prefix);
      redis.disconnect();
    }
  });
});
