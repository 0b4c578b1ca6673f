import { DelayedError, type Job } from 'bullmq';

/**
 * Moves the job back to delayed for about `delayMs` (jittered) and ends this run without spending
 * an attempt: for a busy lock or an open breaker, which say nothing about the job itself.
 */
export async function deferWithoutAttempt(job: Job, delayMs: number): Promise<never> {
  const jittered = Math.round(delayMs * (0.5 + Math.random()));
  await job.moveToDelayed(Date.now() + jittered, job.token);
  throw new DelayedError();
}
