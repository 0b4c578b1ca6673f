import { DelayedError, type Job } from 'bullmq';

/**
 * Moves the job back to delayed for `delayMs` to 1.5 × `delayMs` (jittered upwards only, so
 * deferred jobs do not return all at once and a dependency's Retry-After stays the minimum) and
 * ends this run without spending an attempt.
 */
export async function deferWithoutAttempt(job: Job, delayMs: number, token = job.token): Promise<never> {
  const jittered = Math.round(delayMs * (1 + Math.random() / 2));
  await job.moveToDelayed(Date.now() + jittered, token);
  throw new DelayedError();
}
