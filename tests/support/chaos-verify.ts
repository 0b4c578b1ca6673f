import { readdir } from 'node:fs/promises';
import { basename } from 'node:path';
import { calendarEventId } from '@jobfleet/calendar';
import type { QueueName } from '@jobfleet/kinds';
import { CHAOS_BACKUP_DEFINITION, logLines, sleep, type ChaosSystem, type LogLine } from './chaos';
import type { AcceptedJob, LoadReport } from './chaos-load';
import { withClient } from './backup';
import type { RunningProcess } from './processes';
import { TEST_CUIT } from './system';

export interface JobOutcome extends AcceptedJob {
  /** BullMQ's state at the end; `unknown` = Redis has no such job. */
  state: string;
  failedReason: string | undefined;
  stalledCounter: number;
}

export interface ChaosReport {
  name: string;
  accepted: number;
  completed: number;
  failed: JobOutcome[];
  /** Accepted jobs that never ended, are gone from Redis, or completed without their effect. */
  lost: { jobId: string; queue: QueueName; key: string; why: string }[];
  /** Effects beyond one per accepted job: Calendar inserts, AFIP vouchers, backup files and rows. */
  duplicatedEffects: number;
  /** Every inconsistency found, in words (duplicates, numbering gaps, sync rows, stray files...). */
  problems: string[];
  outcomes: JobOutcome[];
  /** The one-line summary, also written to stdout. */
  summary: string;
}

const TERMINAL = new Set(['completed', 'failed', 'unknown']);
const CALENDAR_ID = 'primary';

/** Polls BullMQ until every accepted job is completed, failed or gone; returns each job's last state. */
async function waitForTerminal(system: ChaosSystem, jobs: readonly AcceptedJob[], timeoutMs: number): Promise<JobOutcome[]> {
  const queues = system.queues();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = await Promise.all(jobs.map((job) => queues[job.queue].getJobState(job.jobId)));
    if (states.every((s) => TERMINAL.has(s)) || Date.now() > deadline) {
      return Promise.all(
        jobs.map(async (job, i) => {
          const stored = await queues[job.queue].getJob(job.jobId);
          return {
            ...job,
            state: states[i] ?? 'unknown',
            failedReason: stored?.failedReason || undefined,
            stalledCounter: stored?.stalledCounter ?? 0,
          };
        }),
      );
    }
    await sleep(250);
  }
}

/**
 * The end-of-scenario audit: waits (bounded) for every accepted job to end, then checks each
 * external effect against what was accepted. Calendar: one inserted event per reservation, no
 * other. AFIP: one voucher per invoice, numbered 1..N without gaps or repeats, each CAE the one
 * recorded. Backups: one succeeded row and one file per backup job, no `.partial` file left.
 * sync_status: `synced`, or `failed` with its error where the job failed. Prints the summary line.
 */
export async function verifyChaos(system: ChaosSystem, load: LoadReport, options: { name: string; timeoutMs?: number }): Promise<ChaosReport> {
  const outcomes = await waitForTerminal(system, load.accepted, options.timeoutMs ?? 45_000);
  const problems: string[] = [...load.unexpected.map((u) => `unexpected answer ${u}`), ...load.duplicateAcceptances.map((d) => `duplicate acceptance ${d}`)];
  const lost: ChaosReport['lost'] = [];
  for (const job of outcomes) {
    if (job.state === 'unknown') lost.push({ jobId: job.jobId, queue: job.queue, key: job.idempotencyKey, why: 'not in Redis' });
    else if (!TERMINAL.has(job.state)) lost.push({ jobId: job.jobId, queue: job.queue, key: job.idempotencyKey, why: `still ${job.state}` });
  }
  const failed = outcomes.filter((j) => j.state === 'failed');
  for (const job of failed) if (!job.failedReason) problems.push(`job ${job.jobId} (${job.queue}) failed without a reason`);
  const completed = outcomes.filter((j) => j.state === 'completed');
  const completedIn = (queue: QueueName) => completed.filter((j) => j.queue === queue);
  const missingEffect = (job: JobOutcome, why: string) => lost.push({ jobId: job.jobId, queue: job.queue, key: job.idempotencyKey, why });

  const { calendar, afip, tenantId } = system.base;
  let duplicatedEffects = 0;

  // Calendar: the event id is derived from the reservation, so an extra effect is a second insert or a foreign event.
  const reservations = outcomes.filter((j) => j.queue === 'calendar-sync');
  const eventIds = new Map(reservations.map((j) => [calendarEventId(tenantId, CALENDAR_ID, j.entityId), j]));
  const events = new Set(calendar.listEvents(CALENDAR_ID).map((e) => e.id));
  for (const [eventId, job] of eventIds) {
    const inserts = calendar.insertCount(eventId);
    if (inserts > 1) problems.push(`reservation ${job.entityId}: ${inserts} Calendar inserts`);
    duplicatedEffects += Math.max(0, inserts - 1);
    if (job.state === 'completed' && !events.has(eventId)) missingEffect(job, `no Calendar event for ${job.entityId}`);
  }
  const foreign = [...events].filter((id) => !eventIds.has(id));
  if (foreign.length > 0) problems.push(`${foreign.length} Calendar events of no accepted reservation`);
  duplicatedEffects += foreign.length;

  // AFIP: what the simulator authorised against what Postgres recorded per invoice.
  const vouchers = afip.authorized(TEST_CUIT, 1, 1);
  const invoices = await withClient(system.base.testDb.url, async (c) =>
    (
      await c.query<{ key: string; status: string; cbte_nro: string; cae: string | null }>(
        'select idempotency_key as key, status, cbte_nro, cae from afip_invoices where tenant_id = $1',
        [tenantId],
      )
    ).rows,
  );
  const authorizedRows = invoices.filter((r) => r.status === 'authorized');
  const expectedNumbers = vouchers.map((_, i) => i + 1);
  const numbers = vouchers.map((v) => v.cbteNro);
  if (numbers.join() !== expectedNumbers.join()) problems.push(`AFIP numbers are not 1..${vouchers.length} in order: ${numbers.join(',')}`);
  if (vouchers.length > authorizedRows.length) problems.push(`${vouchers.length} AFIP vouchers for ${authorizedRows.length} authorised invoices`);
  duplicatedEffects += Math.max(0, vouchers.length - authorizedRows.length);
  const caeByNumber = new Map(vouchers.map((v) => [v.cbteNro, v.cae]));
  for (const row of authorizedRows) {
    if (caeByNumber.get(Number(row.cbte_nro)) !== row.cae) problems.push(`invoice ${row.key}: recorded CAE ${String(row.cae)} for number ${row.cbte_nro}, AFIP has ${String(caeByNumber.get(Number(row.cbte_nro)))}`);
  }
  const authorizedKeys = new Set(authorizedRows.map((r) => r.key));
  for (const job of completedIn('afip-sync')) if (!authorizedKeys.has(job.idempotencyKey)) missingEffect(job, `invoice ${job.entityId} not authorised`);

  // Backups: one row per job, one file per succeeded row, nothing half-written.
  const rows = await withClient(system.base.testDb.url, async (c) =>
    (
      await c.query<{ job_id: string; status: string; location: string | null }>('select job_id, status, location from backups where schedule = $1', [
        CHAOS_BACKUP_DEFINITION,
      ])
    ).rows,
  );
  const files = await readdir(system.backupDirectory);
  const partial = files.filter((f) => f.endsWith('.partial'));
  if (partial.length > 0) problems.push(`partial backup files left: ${partial.join(', ')}`);
  const succeeded = rows.filter((r) => r.status === 'succeeded');
  const complete = files.filter((f) => !f.endsWith('.partial'));
  const recorded = new Set(succeeded.map((r) => basename(r.location ?? '')));
  const strays = complete.filter((f) => !recorded.has(f));
  if (strays.length > 0) problems.push(`backup files without a succeeded row: ${strays.join(', ')}`);
  duplicatedEffects += strays.length;
  for (const job of outcomes.filter((j) => j.queue === 'backup')) {
    const own = rows.filter((r) => r.job_id === job.jobId);
    if (own.length > 1) problems.push(`backup job ${job.jobId} has ${own.length} rows`);
    duplicatedEffects += Math.max(0, own.length - 1);
    if (job.state !== 'completed') continue;
    const run = own.find((r) => r.status === 'succeeded');
    if (!run?.location || !complete.includes(basename(run.location))) missingEffect(job, `backup ${job.jobId}: no succeeded row with its file`);
  }

  // sync_status: the durable record agrees with the job's end.
  const sync = await withClient(system.base.testDb.url, async (c) =>
    (
      await c.query<{ kind: string; entity_id: string; status: string; last_error: unknown }>(
        'select kind, entity_id, status, last_error from sync_status where tenant_id = $1',
        [tenantId],
      )
    ).rows,
  );
  const syncOf = new Map(sync.map((r) => [`${r.kind}/${r.entity_id}`, r]));
  for (const job of outcomes) {
    if (job.queue === 'backup' || !TERMINAL.has(job.state) || job.state === 'unknown') continue;
    const kind = job.queue === 'calendar-sync' ? 'reservation' : 'afip-invoice';
    const row = syncOf.get(`${kind}/${job.entityId}`);
    const expected = job.state === 'completed' ? 'synced' : 'failed';
    if (row?.status !== expected) problems.push(`sync_status ${kind}/${job.entityId} is ${row?.status ?? 'missing'}, job ${job.state}`);
    else if (expected === 'failed' && !row.last_error) problems.push(`sync_status ${kind}/${job.entityId} failed without last_error`);
  }

  const failedWithReason = failed.filter((j) => j.failedReason).length;
  const summary =
    `chaos ${options.name}: accepted=${load.accepted.length} completed=${completed.length} ` +
    `failed-with-reason=${failedWithReason} lost=${lost.length} duplicated-effects=${duplicatedEffects}`;
  process.stdout.write(`${summary}\n`);
  if (lost.length + failed.length + problems.length + duplicatedEffects > 0) {
    const details = [...problems, ...lost.map((l) => `lost ${l.queue} ${l.key} (${l.jobId}): ${l.why}`), ...failed.map((f) => `failed ${f.queue} ${f.idempotencyKey}: ${f.failedReason ?? 'no reason'}`)];
    process.stdout.write(`${details.join('\n')}\n${diagnosis(system)}`);
  }
  return { name: options.name, accepted: load.accepted.length, completed: completed.length, failed, lost, duplicatedEffects, problems, outcomes, summary };
}

/** One log line, short: time, level, message, job and the error chain (messages and codes, no stacks or bodies). */
function brief(line: LogLine): string {
  const chain: string[] = [];
  for (let err = line.err as { type?: string; code?: string; message?: string; cause?: unknown } | undefined; err; err = err.cause as typeof err) {
    chain.push(`${err.type ?? 'Error'}${err.code ? ` ${err.code}` : ''}: ${(err.message ?? '').slice(0, 200)}`);
  }
  return [line.time.slice(11, 23), line.level, line.msg, line.jobId ? `job ${line.jobId.slice(-12)}` : '', chain.join(' <- ')].filter(Boolean).join(' | ');
}

/** What a failing scenario needs to be understood: its chaos timeline and the warnings and errors each process logged. */
export function diagnosis(system: ChaosSystem): string {
  const logged = (name: string, process: RunningProcess) => {
    const lines = logLines(process).filter((l) => l.level === 'warn' || l.level === 'error' || l.level === 'fatal');
    const counts = new Map<string, number>();
    for (const line of lines) counts.set(line.msg, (counts.get(line.msg) ?? 0) + 1);
    if (lines.length === 0) return [];
    return [
      `-- ${name}: ${[...counts].map(([msg, n]) => `${n}x "${msg}"`).join(', ')}; last 10:`,
      ...lines.slice(-10).map(brief),
    ];
  };
  return [
    'timeline:',
    ...system.timeline(),
    ...logged('api', system.api),
    ...system.allWorkers().flatMap((w) => logged(w.id, w.process)),
    ...[{ id: 'api', process: system.api }, ...system.allWorkers()]
      .filter((w) => (w.process.child.exitCode ?? 0) !== 0)
      .flatMap((w) => [
        `-- ${w.id} exited with code ${String(w.process.child.exitCode)}; what it printed outside its JSON log ends:`,
        ...w.process.output().split('\n').filter((line) => !line.startsWith('{')).slice(-30),
      ]),
    ...system
      .liveWorkers()
      .filter((w) => !w.isReady())
      .flatMap((w) => [`-- ${w.id} never got ready; its output ends:`, w.process.output().slice(-2000)]),
    '',
  ].join('\n');
}
