export { buildApi } from './app';
export type { ApiDeps } from './app';
export { startIdempotencyRetention } from './retention';
