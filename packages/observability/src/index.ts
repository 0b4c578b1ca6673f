export { createLogger } from './logger';
export type { Logger } from 'pino';
export { createMetrics, parseInfoMemory } from './metrics';
export type { DeferralReason, Metrics, JobOutcome, LockOperation, LockOperationResult } from './metrics';
export { oldestWaitingJobAgeMs, registerQueueGauges } from './queue-gauges';
export { mayScrape, METRICS_CHALLENGE } from './scrape';
export { checkReadiness, DeadlineExceededError, withDeadline } from './readiness';
export type { ReadinessResult } from './readiness';
