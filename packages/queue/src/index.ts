export { createRedisConnection, waitUntilReady } from './connection';
export { closeQueues, createQueues, enqueue, jobIdFor, jobOptionsFor, settingsFor } from './queues';
export { createWorker } from './worker';
export { decideAfterError } from './attempt-policy';
export type { AttemptDecision, AttemptFacts } from './attempt-policy';
export type { JobProcessor, ProcessorContext } from './worker';
export { closeWorkersGracefully, onShutdownSignal } from './shutdown';
export { WorkerBusyError } from './errors';
