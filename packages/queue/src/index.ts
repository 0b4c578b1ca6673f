export { createRedisConnection, waitUntilReady } from './connection';
export { closeQueues, createQueues, enqueue, jobIdFor, jobOptionsFor } from './queues';
export { createWorker } from './worker';
export { deferWithoutAttempt } from './defer';
export type { JobProcessor, ProcessorContext } from './worker';
export { closeWorkersGracefully, onShutdownSignal } from './shutdown';
