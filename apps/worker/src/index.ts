export { startWorkers } from './worker';
export type { WorkerFleet, WorkerFleetDeps } from './worker';
export { startWorkerHttp } from './http';
