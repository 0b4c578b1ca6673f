export { createLockManager } from './lock';
export type { LockManager } from './lock';
export { createBufferedAuditSink } from './audit-sink';
export { LockLostError, LockUnavailableError } from './errors';
