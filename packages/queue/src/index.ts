export { createRedisConnection, waitUntilReady } from './connection';
export type { RedisRole, RedisConnectionOptions } from './connection';
export { closeQueues, createQueues, enqueue, jobIdFor, jobOptionsFor } from './queues';
export type { CreateQueuesOptions, EnqueueJob, QueueConfig } from './queues';
export { createWorker } from './worker';
export type { CreateWorkerOptions, JobProcessor, ProcessorContext } from './worker';
export { closeWorkersGracefully, onShutdownSignal } from './shutdown';
export type { CloseWorkersOptions, ShutdownSignalOptions } from './shutdown';
export { AttemptTimeoutError, WorkerClosingError } from './errors';
