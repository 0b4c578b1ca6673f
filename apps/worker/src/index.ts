export { startWorkers } from './worker';
export type { WorkerFleet, WorkerFleetDeps } from './worker';
export { startWorkerHttp } from './http';
export { createConnectors } from './connectors';
export type { Connectors } from './connectors';
