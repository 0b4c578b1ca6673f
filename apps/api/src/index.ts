export { buildApi } from './app';
export type { ApiDeps } from './app';
