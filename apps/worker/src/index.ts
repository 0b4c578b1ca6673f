export { startWorkers } from './worker';
export type { WorkerFleet } from './worker';
