import type { QueueName } from '@jobfleet/kinds';
import { CHAOS_BACKUP_DEFINITION, sleep } from './chaos';
import { invoiceRequest, reservationRequest } from './fixtures';

export interface LoadPlan {
  /** calendar-sync creates, one reservation each. */
  calendar: number;
  /** afip-sync invoices, all on TEST_CUIT, point of sale 1, voucher type 1: numbered 1..afip at AFIP. */
  afip: number;
  /** On-demand runs of the chaos backup definition. */
  backups: number;
  /** Share of requests sent again with the same Idempotency-Key and body (a producer's resend). Default 0.2. */
  duplicates?: number;
  /** Requests in flight at once. Default 8. */
  concurrency?: number;
  /** The sends are spread evenly over about this long, so faults land in the middle of the load. */
  durationMs: number;
  /** How long one request is retried before the load gives up on it. Default 45 s. */
  retryForMs?: number;
}

export interface AcceptedJob {
  queue: QueueName;
  idempotencyKey: string;
  jobId: string;
  /** Reservation or invoice id; the definition name for backups. */
  entityId: string;
  /** When its first 202 arrived (ms since epoch). */
  acceptedAt: number;
}

export interface LoadReport {
  /** One per Idempotency-Key, in order of acceptance. */
  accepted: AcceptedJob[];
  /** HTTP attempts made, retries included. */
  attempts: number;
  /** 202s answered with `Idempotent-Replayed: true`. */
  replays: number;
  /** Attempts that were retried, by status code or network error code. */
  retriedBy: Record<string, number>;
  /** Answers no producer should ever get here (4xx other than 409, 500, ...): each one a problem. */
  unexpected: string[];
  /** Keys that got a first (non-replayed) 202 more than once, or two different job ids. */
  duplicateAcceptances: string[];
  /** The slowest single HTTP attempt and the slowest refusal (an answer other than 202), in ms. */
  slowestAttemptMs: number;
  slowestRefusalMs: number;
}

export interface RunningLoad {
  /** Resolves when every request was accepted; rejects when one could not be within `retryForMs`. */
  readonly done: Promise<LoadReport>;
  isDone(): boolean;
  /** Requests accepted so far (replays not counted). */
  acceptedSoFar(): number;
}

interface PlannedRequest {
  queue: QueueName;
  idempotencyKey: string;
  entityId: string;
  body: unknown;
}

// Give one HTTP attempt this long: far above a healthy answer, so a hang is measured, not waited out.
const ATTEMPT_TIMEOUT_MS = 10_000;

function planRequests(plan: LoadPlan): PlannedRequest[] {
  const tag = Date.now().toString(36);
  const originals: PlannedRequest[] = [
    ...Array.from({ length: plan.calendar }, (_, i): PlannedRequest => {
      const reservationId = `res-${i + 1}`;
      return { queue: 'calendar-sync', idempotencyKey: `chaos-${tag}-${reservationId}`, entityId: reservationId, body: reservationRequest(reservationId, 1) };
    }),
    ...Array.from({ length: plan.afip }, (_, i): PlannedRequest => {
      const invoiceId = `inv-${i + 1}`;
      return { queue: 'afip-sync', idempotencyKey: `chaos-${tag}-${invoiceId}`, entityId: invoiceId, body: invoiceRequest(invoiceId) };
    }),
  ];
  shuffle(originals);
  // Backups spread over the whole load rather than wherever the shuffle puts them.
  for (let i = 0; i < plan.backups; i++) {
    const at = Math.floor(((i + 0.5) * originals.length) / plan.backups);
    originals.splice(at, 0, {
      queue: 'backup',
      idempotencyKey: `chaos-${tag}-backup-${i + 1}`,
      entityId: CHAOS_BACKUP_DEFINITION,
      body: { definition: CHAOS_BACKUP_DEFINITION },
    });
  }
  // Each resend goes somewhere after its original: right behind it (both in flight at once) or later.
  const sends = [...originals];
  for (const original of originals) {
    if (Math.random() >= (plan.duplicates ?? 0.2)) continue;
    const from = sends.indexOf(original) + 1;
    sends.splice(from + Math.floor(Math.random() * (sends.length - from + 1)), 0, original);
  }
  return sends;
}

function shuffle(items: unknown[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
}

/**
 * A producer sending `plan` to the API over HTTP: bounded concurrency, paced over `durationMs`,
 * about a fifth of the requests sent twice. Like a real producer it retries a request that was not
 * accepted (503, 409 in flight, connection refused or reset) with the SAME Idempotency-Key and body
 * until it is, and records every accepted job id.
 */
export function startLoad(target: { apiUrl: string; apiKey: string }, plan: LoadPlan): RunningLoad {
  const sends = planRequests(plan);
  const report: LoadReport = {
    accepted: [],
    attempts: 0,
    replays: 0,
    retriedBy: {},
    unexpected: [],
    duplicateAcceptances: [],
    slowestAttemptMs: 0,
    slowestRefusalMs: 0,
  };
  const byKey = new Map<string, AcceptedJob>();
  const retryForMs = plan.retryForMs ?? 45_000;
  const interval = plan.durationMs / Math.max(sends.length, 1);
  const startedAt = Date.now();
  let finished = false;

  async function attempt(request: PlannedRequest): Promise<{ status: number; replayed: boolean; jobId?: string } | { error: string }> {
    report.attempts += 1;
    const started = Date.now();
    try {
      const answer = await fetch(`${target.apiUrl}/v1/jobs/${request.queue}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${target.apiKey}`, 'content-type': 'application/json', 'idempotency-key': request.idempotencyKey },
        body: JSON.stringify(request.body),
        signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
      });
      const text = await answer.text();
      const elapsed = Date.now() - started;
      report.slowestAttemptMs = Math.max(report.slowestAttemptMs, elapsed);
      if (answer.status !== 202) {
        report.slowestRefusalMs = Math.max(report.slowestRefusalMs, elapsed);
        if (answer.status !== 409 && answer.status !== 503) report.unexpected.push(`${request.idempotencyKey}: ${answer.status} ${text.slice(0, 300)}`);
        return { status: answer.status, replayed: false };
      }
      return { status: 202, replayed: answer.headers.get('idempotent-replayed') === 'true', jobId: (JSON.parse(text) as { jobId: string }).jobId };
    } catch (thrown) {
      report.slowestAttemptMs = Math.max(report.slowestAttemptMs, Date.now() - started);
      const error = thrown as Error & { cause?: { code?: string } };
      return { error: error.cause?.code ?? error.name };
    }
  }

  async function send(request: PlannedRequest): Promise<void> {
    const giveUpAt = Date.now() + retryForMs;
    for (;;) {
      const outcome = await attempt(request);
      if ('status' in outcome && outcome.status === 202 && outcome.jobId !== undefined) {
        accept(request, outcome.jobId, outcome.replayed);
        return;
      }
      const reason = 'error' in outcome ? outcome.error : String(outcome.status);
      // Client errors other than 409 will not get better by resending.
      if ('status' in outcome && outcome.status < 500 && outcome.status !== 409) {
        throw new Error(`request ${request.idempotencyKey} refused with ${reason}: ${report.unexpected.at(-1) ?? ''}`);
      }
      report.retriedBy[reason] = (report.retriedBy[reason] ?? 0) + 1;
      if (Date.now() > giveUpAt) throw new Error(`request ${request.idempotencyKey} not accepted within ${retryForMs} ms (last: ${reason})`);
      await sleep(100 + Math.random() * 150);
    }
  }

  const freshAnswers = new Map<string, number>();
  function accept(request: PlannedRequest, jobId: string, replayed: boolean): void {
    if (replayed) report.replays += 1;
    // Only one answer per key may be a first acceptance; a replay can even arrive before it.
    const fresh = (freshAnswers.get(request.idempotencyKey) ?? 0) + (replayed ? 0 : 1);
    freshAnswers.set(request.idempotencyKey, fresh);
    const known = byKey.get(request.idempotencyKey);
    if (known ? known.jobId !== jobId || (fresh > 1 && !replayed) : fresh > 1) {
      report.duplicateAcceptances.push(`${request.idempotencyKey}: accepted as ${known?.jobId ?? '?'} and as ${jobId}${replayed ? '' : ' (not a replay)'}`);
    }
    if (known) return;
    const job: AcceptedJob = { queue: request.queue, idempotencyKey: request.idempotencyKey, jobId, entityId: request.entityId, acceptedAt: Date.now() };
    byKey.set(request.idempotencyKey, job);
    report.accepted.push(job);
  }

  let next = 0;
  async function runner(): Promise<void> {
    while (next < sends.length) {
      const index = next++;
      const request = sends[index];
      if (!request) return;
      const dueIn = startedAt + index * interval - Date.now();
      if (dueIn > 0) await sleep(dueIn);
      await send(request);
    }
  }

  const done = Promise.all(Array.from({ length: plan.concurrency ?? 8 }, runner))
    .then(() => report)
    .finally(() => {
      finished = true;
    });
  // The caller awaits `done` eventually; until then a failure must not be an unhandled rejection.
  done.catch(() => undefined);
  return { done, isDone: () => finished, acceptedSoFar: () => byKey.size };
}
