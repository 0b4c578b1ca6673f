export { loadConfig, loadConfigOrExit, DEPENDENCIES } from './config';
export type { Config, RetentionPolicy, ServiceConfig, TracingConfig, TracesSampler, WorkerQueueSettings, Dependency, DependencyPolicySettings } from './config';
export { BACKUP_DEFINITION_NAME } from './backup';
export type { BackupConfig, BackupDefinition, BackupTargetConfig, RestoreCheckMode } from './backup';
export { DEFAULT_TENANT_TIERS, limitOverridesSchema, resolveTenantLimits, tenantLimitChangeSchema } from './tenant-limits';
export type { KindQuotas, LimitOverrides, TenantLimits } from './tenant-limits';
export { parseRedisTarget } from './redis';
export type { QueueRedisInstance, RedisTarget } from './redis';
export type { DegradationConfig } from './degradation';
