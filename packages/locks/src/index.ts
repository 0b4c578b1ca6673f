export { createLockManager } from './lock';
export type { LockManager } from './lock';
export { createBufferedAuditSink } from './audit-sink';
export { LockUnavailableError } from './errors';
