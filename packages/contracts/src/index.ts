export {
  calendarSyncRequestSchema,
  calendarSyncJobSchema,
  calendarSyncActions,
} from './calendar-sync';
export type { CalendarSyncRequest, CalendarSyncJob, CalendarSyncResult, CalendarSyncAction } from './calendar-sync';
export { JobfleetError, PermanentError, DependencyUnavailableError, RateLimitedError, WaitError, DependencyWaitError, CircuitOpenError, coerceError, toStoredError, NETWORK_ERROR_CODES } from './errors';
export type { StoredError } from './errors';
export { afipSyncRequestSchema, afipSyncJobSchema, isValidCuit, AFIP_VOUCHER_TYPES, AFIP_VAT_RATES, AFIP_DOC_TYPES } from './afip-sync';
export type { AfipSyncRequest, AfipSyncJob, AfipSyncResult } from './afip-sync';
export { BACKUP_DEFINITION_NAME, backupRequestSchema, backupJobSchema } from './backup';
export type { BackupRequest, BackupJob, BackupResult } from './backup';
