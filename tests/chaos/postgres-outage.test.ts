import { sleep, startChaosSystem, type ChaosSystem } from '../support/chaos';
import { startLoad } from '../support/chaos-load';
import { verifyChaos } from '../support/chaos-verify';

// Postgres goes away for about six seconds in the middle of the load: every connection of the
// API and the workers is reset and new ones are refused (a TCP proxy in front of the server, so the
// machine's shared Postgres keeps running). The API answers 503 with Retry-After and the producer
// resends with the same key; workers cannot start jobs (the Postgres breaker opens and jobs wait
// without spending attempts) and a job whose effect already happened retries its status write.
describe('chaos: Postgres outage under load', () => {
  let system: ChaosSystem | undefined;
  afterAll(async () => {
    await system?.close();
  }, 60_000);

  it('completes every accepted job once Postgres is back, none lost, no effect duplicated', async () => {
    system = await startChaosSystem({
      label: 'chaos-postgres',
      workers: 2,
      proxyPostgres: true,
      env: { POSTGRES_MAX_FAILURES: '3', BREAKER_HALF_OPEN_AFTER_MS: '1000' },
    });
    const proxy = system.postgresProxy;
    if (!proxy) throw new Error('no Postgres proxy');
    // Calendar calls take a second, so jobs are always in flight when Postgres goes: their status
    // writes fail (the breaker opens) rather than the outage falling between two quick jobs.
    system.base.calendar.setLatency(1000);
    const load = startLoad(system, { calendar: 120, afip: 40, backups: 2, durationMs: 15_000 });

    await sleep(4000);
    system.note('Postgres down');
    proxy.setRefusing(true);
    proxy.resetAll();
    await sleep(2000);
    const ready = await fetch(`${system.apiUrl}/health/ready`);
    const post = await fetch(`${system.apiUrl}/v1/jobs/calendar-sync`, {
      method: 'POST',
      headers: { authorization: `Bearer ${system.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reservationId: 'during-outage', action: 'cancel', calendarId: 'primary', version: 1 }),
    });
    await sleep(4000);
    system.note('Postgres back');
    proxy.setRefusing(false);

    const report = await verifyChaos(system, await load.done, { name: 'postgres-outage', timeoutMs: 90_000 });
    expect({ lost: report.lost, failed: report.failed, problems: report.problems }).toEqual({ lost: [], failed: [], problems: [] });
    expect(report.duplicatedEffects).toBe(0);
    expect(report.completed).toBe(report.accepted);
    // During the outage: not ready, and a request that needs Postgres gets 503 with Retry-After.
    expect(ready.status).toBe(503);
    expect(post.status).toBe(503);
    expect(post.headers.get('retry-after')).toMatch(/^\d+$/);
    const logs = system.allWorkers().map((w) => w.process.output()).join('\n');
    expect(logs).toContain('circuit breaker of postgres is now open');
  }, 240_000);
});
