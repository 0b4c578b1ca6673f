export { createLogger } from './logger';
export type { LoggerOptions } from './logger';
export type { Logger } from 'pino';
export { createMetrics, JOB_OUTCOMES, QUEUE_JOB_STATES, LOCK_OPERATION_RESULTS } from './metrics';
export type { Metrics, MetricsOptions, JobOutcome, QueueJobState, LockOperation, LockOperationResult } from './metrics';
export { registerQueueGauges } from './queue-gauges';
export type { JobCountSource, QueueGaugeOptions } from './queue-gauges';
export { checkReadiness, DeadlineExceededError, withDeadline } from './readiness';
export type { ReadinessResult } from './readiness';
