export { loadConfig, loadConfigOrExit, ConfigError, DEV_API_KEY, DEV_ADMIN_PASSWORD, DEV_TENANT_ID } from './config';
export type { Config, ServiceConfig, QueueName, CalendarAuth, WorkerQueueSettings } from './config';
export { BACKUP_DEFINITION_NAME } from './backup';
export type { BackupConfig, BackupDefinition, BackupFormat, BackupTargetConfig, RestoreCheckMode } from './backup';
