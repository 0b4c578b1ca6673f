export type { BackupTarget } from './target';
export { createBackupTarget } from './targets';
export { runBackup } from './run-backup';
export { BackupSupersededError } from './errors';
export { verifyLatestBackup } from './verify-backup';
