export { openDatabase, MIGRATIONS_DIR } from './client';
export type { Database, DatabaseOptions, Db, Schema } from './client';
export * as schema from './schema';
export type { SyncStatusValue } from './schema';
export { syncStatusRepository } from './sync-status';
export type { SyncEntity, SyncStatusRow, StoredError } from './sync-status';
