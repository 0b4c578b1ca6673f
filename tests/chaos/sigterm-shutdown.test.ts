import { logLines, startChaosSystem, type ChaosSystem } from '../support/chaos';
import { startLoad } from '../support/chaos-load';
import { diagnosis, verifyChaos } from '../support/chaos-verify';
import { waitFor, type RunningProcess } from '../support/processes';

const SHUTDOWN_TIMEOUT_MS = 10_000;
// How the worker logs the end of an attempt (anything but a stall, which another worker detects).
const ATTEMPT_ENDED = /^job (completed|failed|attempt failed|interrupted|re-scheduled|waits: re-delayed)/;
// What the worker logs when SHUTDOWN_TIMEOUT_MS runs out and it closes hard.
const FORCED_SHUTDOWN = /closing workers hard|interrupted by a hard close|shutdown timeout reached/;

/** Jobs whose attempt started on this worker and has not ended, from its debug log. */
function activeJobs(worker: RunningProcess): Set<string> {
  const active = new Set<string>();
  for (const line of logLines(worker)) {
    if (line.jobId === undefined) continue;
    if (line.msg === 'job started') active.add(line.jobId);
    else if (ATTEMPT_ENDED.test(line.msg)) active.delete(line.jobId);
  }
  return active;
}

// A worker told to stop (SIGTERM, as Kubernetes does on a scale-down or a rollout) while it is
// busy: it takes no new job, finishes the active ones within SHUTDOWN_TIMEOUT_MS and exits 0.
// Nothing it had is left behind for stalled-job recovery, so no job runs twice; the other worker
// takes the rest of the load. Locks are long here (10 s) because no worker dies in this scenario:
// a stall could only come from the shutdown itself, not from a starved event loop on a busy
// machine. Workers log at debug, so their 'job started' lines show what each one is running.
describe('chaos: a busy worker stopped with SIGTERM under load', () => {
  let system: ChaosSystem | undefined;
  afterAll(async () => {
    await system?.close();
  }, 60_000);

  it('finishes its active jobs and exits 0 in time; no job is re-run, none lost, no effect duplicated', async () => {
    system = await startChaosSystem({
      label: 'chaos-sigterm',
      workers: 2,
      env: { SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS), WORKER_LOCK_DURATION_MS: '10000', AFIP_LOCK_TTL_MS: '10000', LOG_LEVEL: 'debug' },
    });
    // Each Calendar call takes 300 ms, so a busy worker is in the middle of several jobs.
    system.base.calendar.setLatency(300);
    const load = startLoad(system, { calendar: 150, afip: 60, backups: 4, durationMs: 15_000 });
    const [stopping, staying] = system.liveWorkers();
    if (!stopping || !staying) throw new Error('two workers expected');
    const busy = await waitFor(() => activeJobs(stopping.process).size >= 3 && activeJobs(stopping.process), {
      timeoutMs: 30_000,
      what: `${stopping.id} to be running 3 jobs`,
      intervalMs: 20,
    });

    const signalledAt = Date.now();
    system.note(`SIGTERM ${stopping.id} while it runs ${busy.size} jobs`);
    const exit = await system.stopWorker(stopping, 'SIGTERM');
    const shutdownMs = Date.now() - signalledAt;
    system.note(`${stopping.id} exited after ${shutdownMs} ms`);

    const report = await verifyChaos(system, await load.done, { name: 'sigterm-shutdown' });
    const stoppingLog = logLines(stopping.process);
    const forced = stoppingLog.filter((l) => FORCED_SHUTDOWN.test(l.msg)).map((l) => l.msg);
    if (exit.code !== 0 || shutdownMs >= SHUTDOWN_TIMEOUT_MS || forced.length > 0) {
      const unfinished = [...activeJobs(stopping.process)].join(', ') || 'none';
      process.stdout.write(`${diagnosis(system)}jobs still running on ${stopping.id} when it exited: ${unfinished}\n`);
    }
    expect(exit).toEqual({ code: 0, signal: null });
    expect(shutdownMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
    expect(stoppingLog.map((l) => l.msg)).toContain('shutting down: no new jobs, finishing active ones');
    // Not forced: no hard close, no job interrupted.
    expect(forced).toEqual([]);
    // Every attempt it was running when signalled ended there, and nothing is running any more.
    const endedThere = new Set(stoppingLog.filter((l) => l.jobId !== undefined && ATTEMPT_ENDED.test(l.msg)).map((l) => l.jobId));
    expect([...busy].filter((id) => !endedThere.has(id))).toEqual([]);
    expect([...activeJobs(stopping.process)]).toEqual([]);

    // No job ran twice: none stalled, and each completed exactly once across both workers.
    const stalled = report.outcomes.filter((j) => j.stalledCounter > 0);
    for (const job of stalled) {
      const history = [stopping, staying].flatMap((w) => logLines(w.process).filter((l) => l.jobId === job.jobId).map((l) => `${l.time} ${w.id} ${l.level} ${l.msg}`));
      process.stdout.write(`stalled ${job.queue} ${job.idempotencyKey} ${job.jobId} (SIGTERM at ${new Date(signalledAt).toISOString()}):\n  ${history.sort().join('\n  ')}\n`);
    }
    expect(stalled.map((j) => j.jobId)).toEqual([]);
    const completions = [stopping, staying].flatMap((w) => logLines(w.process).filter((l) => l.msg === 'job completed').map((l) => l.jobId));
    expect(completions.filter((id, i) => completions.indexOf(id) !== i)).toEqual([]);
    expect(new Set(completions).size).toBe(report.accepted);
    expect(logLines(staying.process).filter((l) => /stalled/.test(l.msg))).toEqual([]);

    expect(report.accepted).toBe(214);
    expect({ lost: report.lost, failed: report.failed, problems: report.problems }).toEqual({ lost: [], failed: [], problems: [] });
    expect(report.duplicatedEffects).toBe(0);
    expect(report.completed).toBe(report.accepted);
  }, 240_000);
});
