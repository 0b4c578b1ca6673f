export { openDatabase, openMigratedDatabase } from './client';
export type { Database, Db } from './client';
export * as schema from './schema';
export type { JobState, LockAuditEvent } from './schema';
export { recordEnqueuedMany, syncStatusRepository } from './sync-status';
export type { SyncEntity, SyncStatusRow } from './sync-status';
export { createTenant, tenantExists, ensureDevTenant } from './tenants';
export {
  API_KEY_SCOPES,
  ApiKeyError,
  DEFAULT_ROTATION_GRACE_SECONDS,
  apiKeyExpirySchema,
  apiKeyNameSchema,
  authenticateApiKey,
  createApiKey,
  findApiKey,
  hashApiKey,
  listApiKeys,
  recordApiKeyUse,
  revokeApiKey,
  rotateApiKey,
  rotationGraceSecondsSchema,
} from './api-keys';
export type { ApiKeyInfo, ApiKeyPrincipal, ApiKeyScope } from './api-keys';
export {
  beginIdempotentRequest,
  beginIdempotentRequests,
  completeIdempotentRequests,
  abandonIdempotentRequests,
  findIdempotencyRecordByJobId,
} from './idempotency';
export type { BeginOutcome, IdempotencyKeyRef } from './idempotency';
export { findSyncStatusByJobId } from './sync-status-lookup';
export { afipInvoiceRepository, FencedOutError } from './afip-invoices';
export { appendLockAuditEvents, verifyLockAuditChains } from './lock-audit';
export type { LockAuditInput } from './lock-audit';
export { backupRepository } from './backups';
export type { BackupRow } from './backups';
export {
  ConnectionError,
  afipIssuerRepository,
  calendarAccessOf,
  googleConnectionRepository,
  mayWriteCalendar,
  reencryptConnectionSecrets,
  serviceAccountCredential,
  serviceAccountKeySchema,
} from './connections';
export type { CalendarAccess, GoogleCredential } from './connections';
export { classifyPostgresError, isUnreachablePostgresQuery, postgresRefusal } from './postgres-errors';
export { createTenantLimitsCache, tenantLimitsRepository } from './tenant-limits';
export type { TenantLimitsCache } from './tenant-limits';
export { adminAuditRepository } from './admin-audit';
export { runRetention } from './retention';
export { ensureLockAuditPartitions } from './lock-audit-partitions';
export type { RetentionReport } from './retention';
export { DEPRECATED_USAGE_DAYS, deprecatedUsageRepository } from './deprecated-usage';
export type { DeprecatedUsageCount, DeprecatedUsageRow } from './deprecated-usage';
export type { AdminAuditRow } from './admin-audit';
export { featureFlagRepository, fleetSwitchRepository } from './fleet-controls';
export type { FeatureFlag, FeatureFlagDefinition, FleetActor, FleetSwitch, FleetSwitchChange, FlagValue } from './fleet-controls';
export { switchScopes } from './schema';
export { jobRepository, recordAcceptedJobs, recordAttempt } from './jobs';
export type { AttemptEvent, JobFilter, JobIdentity, JobRow } from './jobs';
