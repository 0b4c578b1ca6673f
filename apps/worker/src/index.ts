export { startWorkers } from './worker';
export type { WorkerFleet } from './worker';
export { createConnectors } from './connectors';
