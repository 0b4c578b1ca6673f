export { createDependencyGuard, createDependencyGuards } from './guard';
export type { DependencyGuard } from './guard';
export type { Dependency } from '@jobfleet/config';
export { createFleetFailureCounter, publishBreakerState, readDegradedDependencies } from './fleet-view';
