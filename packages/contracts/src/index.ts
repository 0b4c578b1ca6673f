export { calendarSyncRequestSchema } from './calendar-sync';
export type { CalendarSyncRequest, CalendarSyncResult } from './calendar-sync';
export {
  JobfleetError,
  PermanentError,
  DependencyUnavailableError,
  RateLimitedError,
  WaitError,
  DependencyWaitError,
  CircuitOpenError,
  DependencyUnreachableError,
  coerceError,
  isErrorLike,
  toStoredError,
  NETWORK_ERROR_CODES,
  parseRetryAfter,
} from './errors';
export type { StoredError } from './errors';
export { afipSyncRequestSchema, isValidCuit } from './afip-sync';
export type { AfipSyncRequest, AfipSyncResult } from './afip-sync';
export { backupRequestSchema, backupJobSchema } from './backup';
export type { BackupJob, BackupResult } from './backup';
