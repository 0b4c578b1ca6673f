export { buildApi } from './app';
export { startIdempotencyRetention } from './retention';
