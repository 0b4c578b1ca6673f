import { DelayedError, type Job } from 'bullmq';

/**
 * Moves the job back to delayed for about `delayMs` (jittered, so deferred jobs do not return all
 * at once) and ends this run without spending an attempt: for a busy lock, an open breaker or a
 * worker short of memory, which say nothing about the job itself.
 */
export async function deferWithoutAttempt(job: Job, delayMs: number, token = job.token): Promise<never> {
  const jittered = Math.round(delayMs * (0.5 + Math.random()));
  await job.moveToDelayed(Date.now() + jittered, token);
  throw new DelayedError();
}
