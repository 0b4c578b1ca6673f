export { buildApi } from './app';
export { startRetention } from './retention';
