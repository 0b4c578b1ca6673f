import { QUEUE_JOB_STATES, type Metrics, type QueueJobState } from './metrics';
import { withDeadline } from './readiness';

type CountedState = Exclude<QueueJobState, 'paused'>;
// BullMQ 6 has no `paused` list: a paused queue keeps its jobs in wait/prioritized and flags its meta key.
const COUNTED_STATES: readonly CountedState[] = QUEUE_JOB_STATES.filter((s): s is CountedState => s !== 'paused');

/** Where the oldest waiting job is read; a BullMQ `Queue` is one. */
export interface WaitingJobSource {
  /** With `asc`, the first of the wait list is its oldest and the first prioritized the next to run. */
  getJobs(types: ('wait' | 'prioritized')[], start: number, end: number, asc: boolean): Promise<readonly WaitingJob[]>;
}

/** What the gauge reads from a queue; a BullMQ `Queue` is one. */
export interface JobCountSource extends WaitingJobSource {
  readonly name: string;
  getJobCounts(...types: CountedState[]): Promise<Record<string, number>>;
  isPaused(): Promise<boolean>;
}

/** What the oldest-age gauge reads of a job (BullMQ leaves `delay` undefined on a job added without one). */
interface WaitingJob {
  readonly timestamp: number;
  readonly delay?: number;
}

export interface QueueGaugeOptions {
  /** How long one scrape waits for a queue's counts before counting an error. Default 2000 ms. */
  timeoutMs?: number;
}

/**
 * Makes `queue_jobs{queue,state}` read each queue's counts from Redis when scraped, and
 * `queue_oldest_waiting_job_age_seconds{queue}` the age of its oldest waiting job: the tail of the
 * wait list or the head of the prioritized set (reading every prioritized job would cost a scan; a
 * tenant's jobs deep in its backlog wait behind others by design, see fair scheduling). The age
 * counts from the job's enqueue plus the delay it was last given (BullMQ keeps no "ready since"),
 * so a job re-delayed for a dependency or retried shows its earlier waits too. While a queue
 * is paused its waiting and prioritized jobs show as `paused`, so waiting + prioritized is always
 * work a worker could take now (what autoscaling reads). A queue whose counts cannot be read within
 * the timeout is left out of that scrape and counted in `queue_metrics_collect_errors_total`.
 * Returns a function that stops reading these queues.
 */
export function registerQueueGauges(
  metrics: Metrics,
  queues: readonly JobCountSource[],
  options: QueueGaugeOptions = {},
): () => void {
  const timeoutMs = options.timeoutMs ?? 2000;
  return metrics.onQueueJobsCollect(async () => {
    await Promise.all(
      queues.map(async (queue) => {
        try {
          const [counts, paused, oldestAgeMs] = await withDeadline(
            Promise.all([queue.getJobCounts(...COUNTED_STATES), queue.isPaused(), oldestWaitingJobAgeMs(queue, Date.now())]),
            timeoutMs,
            `job counts of ${queue.name}`,
          );
          for (const state of QUEUE_JOB_STATES) {
            metrics.queueJobs.set({ queue: queue.name, state }, stateCount(state, counts, paused));
          }
          metrics.queueOldestWaitingAge.set({ queue: queue.name }, oldestAgeMs / 1000);
        } catch {
          // Stale numbers would mislead more than a gap does.
          for (const state of QUEUE_JOB_STATES) metrics.queueJobs.remove({ queue: queue.name, state });
          metrics.queueOldestWaitingAge.remove({ queue: queue.name });
          metrics.queueCollectErrors.inc({ queue: queue.name });
        }
      }),
    );
  });
}

function stateCount(state: QueueJobState, counts: Record<string, number>, paused: boolean): number {
  const count = (s: CountedState) => counts[s] ?? 0;
  switch (state) {
    case 'paused':
      return paused ? count('waiting') + count('prioritized') : 0;
    case 'waiting':
    case 'prioritized':
      return paused ? 0 : count(state);
    case 'active':
    case 'delayed':
    case 'failed':
    case 'completed':
    case 'waiting-children':
      return count(state);
    default: {
      const unknown: never = state;
      throw new Error(`unknown job state ${String(unknown)}`);
    }
  }
}


/**
 * How long, in ms, the queue's oldest waiting job (the wait list's tail or the prioritized set's
 * head) has been due: since its enqueue plus its delay, so a job promoted before its delay is up
 * has not waited yet. 0 with nothing waiting. The gauge and the degradation level both read this.
 */
export async function oldestWaitingJobAgeMs(queue: WaitingJobSource, now: number): Promise<number> {
  const jobs = await queue.getJobs(['wait', 'prioritized'], 0, 0, true);
  const dueSince = Math.min(...jobs.map((job) => job.timestamp + (job.delay ?? 0)));
  return jobs.length === 0 ? 0 : Math.max(0, now - dueSince);
}
