export { createLockManager, lockFamily } from './lock';
export type { AcquireOptions, Lock, LockManager, LockManagerOptions } from './lock';
export { createBufferedAuditSink } from './audit-sink';
export type { BufferedAuditSink, BufferedAuditSinkOptions, LockAuditSink } from './audit-sink';
export { LockLostError, LockUnavailableError } from './errors';
export type { LockLossReason } from './errors';
