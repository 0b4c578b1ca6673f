export { AdmissionRefusal, defineJobKind, jobDataSchema } from './define';
export type { AdmissionContext, AnyJobKind, EnqueueScope, JobData, JobKind, JobKindDefinition, KindIntake, KindRuntime, KindWorker, KindWorkerContext } from './define';
export { JOB_KINDS, QUEUE_NAMES } from './registry';
export type { QueueName } from './registry';
export { calendarSync, RESERVATION_SYNC_KIND } from './calendar-sync/index';
export { afipSync } from './afip-sync/index';
export { backup } from './backup/index';
export { parsePayload, recordAttemptDecision, recordUnprocessedFailure, syncEntityOf, trackSyncStatus } from './sync-tracking';
export type { SyncTrackingDeps } from './sync-tracking';
