export { openDatabase, openMigratedDatabase } from './client';
export type { Database, Db } from './client';
export * as schema from './schema';
export type { LockAuditEvent } from './schema';
export { syncStatusRepository } from './sync-status';
export type { SyncEntity, SyncStatusRow } from './sync-status';
export { API_KEY_SCOPES, createTenant, tenantExists, createApiKey, authenticateApiKey, revokeApiKey, ensureDevTenant } from './tenants';
export type { ApiKeyScope, ApiKeyPrincipal } from './tenants';
export {
  beginIdempotentRequest,
  completeIdempotentRequest,
  abandonIdempotentRequest,
  findIdempotencyRecordByJobId,
  pruneExpiredIdempotencyKeys,
} from './idempotency';
export type { IdempotencyKeyRef } from './idempotency';
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
export { classifyPostgresError, postgresRefusal } from './postgres-errors';
export { createTenantLimitsCache, tenantLimitsRepository } from './tenant-limits';
export type { TenantLimitsCache } from './tenant-limits';
