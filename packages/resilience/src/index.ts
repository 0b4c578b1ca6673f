export { BREAKER_STATE_VALUE, createDependencyGuard, createDependencyGuards, isDependencyFailure } from './guard';
export type { BreakerState, CallOptions, DependencyGuard, GuardEvents } from './guard';
export { DEPENDENCIES } from '@jobfleet/config';
export type { Dependency, DependencyPolicySettings } from '@jobfleet/config';
export { breakerViewKey, createFleetFailureCounter, publishBreakerState, readDegradedDependencies } from './fleet-view';
