import type { Job } from 'bullmq';

export interface ProcessorContext {
  signal: AbortSignal;
  attempt: number;
  finalAttempt: boolean;
}

/** What each file in processors/ returns: job (data still unparsed) in, result out. */
export type JobProcessor<R> = (job: Job<unknown, R>, context: ProcessorContext) => Promise<R>;
