export { openDatabase, openMigratedDatabase, MIGRATIONS_DIR } from './client';
export type { Database, DatabaseOptions, Db, Schema } from './client';
export * as schema from './schema';
export type { SyncStatusValue, LockAuditEvent, AfipInvoiceStatus, BackupStatus, GoogleAuthKind } from './schema';
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
export type { BeginIdempotentRequest, BeginOutcome, IdempotencyKeyRef, IdempotencyRecord } from './idempotency';
export { findSyncStatusByJobId } from './sync-status-lookup';
export { afipInvoiceRepository, FencedOutError } from './afip-invoices';
export type { AfipInvoiceRow, VoucherKey } from './afip-invoices';
export { appendLockAuditEvents, verifyLockAuditChains, GENESIS_HASH } from './lock-audit';
export type {
  LockAuditInput,
  LockAuditBreak,
  BrokenLink,
  ChainVerification,
  LockAuditVerification,
  VerifyLockAuditOptions,
} from './lock-audit';
export { backupRepository } from './backups';
export type { BackupRow } from './backups';
export {
  ConnectionError,
  afipIssuerRepository,
  googleConnectionRepository,
  mayWriteCalendar,
  reencryptConnectionSecrets,
} from './connections';
export type { AfipIssuerSecret, AfipIssuerView, CalendarAccess, GoogleConnectionView, GoogleCredential } from './connections';
export { classifyPostgresError, postgresRefusal } from './postgres-errors';
export type { PostgresErrorClass } from './postgres-errors';
