export { AdmissionRefusal, defineJobKind, jobDataSchema } from './define';
export type { AdmissionContext, AnyJobKind, KindIntake, KindRuntime } from './define';
export { JOB_KINDS, QUEUE_NAMES } from './registry';
export type { QueueName } from './registry';
export { RESERVATION_SYNC_KIND } from './calendar-sync/index';
export { parsePayload, recordAttemptDecision, recordUnprocessedFailure, trackSyncStatus } from './sync-tracking';
export { attemptHistory } from './job-history';
