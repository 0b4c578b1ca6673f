export { loadConfig, loadConfigOrExit, ConfigError, DEPENDENCIES, DEV_API_KEY, DEV_ADMIN_PASSWORD, DEV_TENANT_ID, DEV_SECRETS_KEY } from './config';
export type { Config, ServiceConfig, ConnectorMode, WorkerQueueSettings, Dependency, DependencyPolicySettings } from './config';
export { BACKUP_DEFINITION_NAME } from './backup';
export type { BackupConfig, BackupDefinition, BackupFormat, BackupTargetConfig, RestoreCheckMode } from './backup';
