export { createDependencyGuard, createDependencyGuards } from './guard';
export type { DependencyGuard } from './guard';
export type { Dependency } from '@jobfleet/config';
export { createFleetFailureCounter, publishBreakerState, readDegradedDependencies } from './fleet-view';
export { DEGRADATION_LEVELS, intakeRefusal, levelRank, mayTakeJobs, requestLimitFactor } from './degradation-level';
export type { DegradationCondition, DegradationLevel, DegradationSignals } from './degradation-level';
export { startDegradation } from './degradation-fleet';
export type { DegradationRunner, DegradationSnapshot, DegradationSources, DegradationAuditEntry, DegradationView } from './degradation-fleet';
