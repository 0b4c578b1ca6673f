export { runPgDump } from './pg-dump';
export type { PgDumpOptions, PgDumpResult } from './pg-dump';
export { listDumpContents } from './restore-check';
export { applyRetention } from './retention';
export type { RetentionPolicy, RetentionResult } from './retention';
export { BackupTimeoutError } from './errors';
