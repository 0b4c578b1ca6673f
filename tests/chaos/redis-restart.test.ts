import { sleep, startChaosSystem, type ChaosSystem } from '../support/chaos';
import { startLoad } from '../support/chaos-load';
import { verifyChaos } from '../support/chaos-verify';

// Redis restarted twice under load, on the same port and AOF directory (appendonly yes,
// appendfsync everysec, no RDB), as an operator or a crash would:
//
// 1. SHUTDOWN: Redis writes and fsyncs the AOF before exiting, so every acknowledged write
//    survives. An accepted job (202) was acknowledged by Redis first, so none may be lost.
// 2. SIGKILL (a process crash): with everysec, Redis write(2)s the AOF buffer before it sends the
//    replies of that event-loop turn and fsyncs once a second in the background. A killed process
//    loses nothing the kernel already has, so every acknowledged write is in the file when Redis
//    starts again, and none may be lost here either. The exception: while a background fsync is
//    still running (a slow disk), Redis postpones the write for up to 2 s and replies anyway; a
//    crash then loses those writes. Nor can this test simulate the machine going down: then the
//    last ~1-2 s of acknowledged writes, accepted jobs included, can vanish. Only
//    `appendfsync always` closes those windows.
//
// While Redis is down the API must refuse at once (503 with Retry-After), never hang; the producer
// retries with the same Idempotency-Key. Workers reconnect by themselves.
describe('chaos: Redis restarted (SHUTDOWN, then SIGKILL) under load', () => {
  let system: ChaosSystem | undefined;
  afterAll(async () => {
    await system?.close();
  }, 60_000);

  it('loses no accepted job, duplicates no effect, and the API answers 503 quickly while Redis is down', async () => {
    system = await startChaosSystem({ label: 'chaos-redis-restart', workers: 2, ownRedis: true });
    const redis = system.redis;
    if (!redis) throw new Error('no own Redis');
    system.base.calendar.setLatency(200);
    const load = startLoad(system, { calendar: 150, afip: 60, backups: 4, durationMs: 20_000 });

    for (const mode of ['shutdown', 'crash'] as const) {
      await sleep(5000);
      const acceptedBefore = load.acceptedSoFar();
      await redis.stop(mode);
      system.note(`Redis stopped (${mode}) after ${acceptedBefore} accepted`);
      await sleep(2000);
      await redis.start();
      system.note('Redis started again from its AOF');
    }

    const loadReport = await load.done;
    const report = await verifyChaos(system, loadReport, { name: 'redis-restart' });
    // The producer did meet the outages and was refused, quickly, each time.
    expect(loadReport.retriedBy['503']).toBeGreaterThan(0);
    expect(loadReport.slowestRefusalMs).toBeLessThan(3000);
    expect(loadReport.slowestAttemptMs).toBeLessThan(3000);
    expect(report.accepted).toBe(214);
    expect({ lost: report.lost, failed: report.failed, problems: report.problems }).toEqual({ lost: [], failed: [], problems: [] });
    expect(report.duplicatedEffects).toBe(0);
    expect(report.completed).toBe(report.accepted);
  }, 240_000);
});
