export { loadConfig, loadConfigOrExit, ConfigError, DEV_API_KEY, DEV_ADMIN_PASSWORD, DEV_TENANT_ID } from './config';
export type { Config, ServiceConfig, QueueName, CalendarAuth, WorkerQueueSettings } from './config';
