export { createLogger } from './logger';
export type { Logger } from 'pino';
export { createMetrics } from './metrics';
export type { DeferralReason, Metrics, JobOutcome, LockOperation, LockOperationResult } from './metrics';
export { registerQueueGauges } from './queue-gauges';
export { mayScrape, METRICS_CHALLENGE } from './scrape';
export { checkReadiness, DeadlineExceededError, withDeadline } from './readiness';
export type { ReadinessResult } from './readiness';
