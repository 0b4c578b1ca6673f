export { createDependencyGuard, createDependencyGuards } from './guard';
export type { DependencyGuard } from './guard';
export type { Dependency } from '@jobfleet/config';
export { createFleetFailureCounter, publishBreakerState, readDegradedDependencies } from './fleet-view';
export { DEGRADATION_LEVELS, intakeRefusal, mayTakeJobs, requestLimitFactor } from './degradation-level';
export { startDegradation } from './degradation-fleet';
export type { DegradationView } from './degradation-fleet';
