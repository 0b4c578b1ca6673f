export { createFleetControls, fleetControlsChannel } from './live';
export type { FleetControls, FleetControlsOptions } from './live';
export { rolloutBucket } from './snapshot';
export type { FleetControlsSnapshot, SwitchHit } from './snapshot';
export { openFlagClient } from './flag-client';
export type { FlagClient } from './flag-client';
export { createFlagRollbackMonitor, JOB_KEY_ATTRIBUTE, jobKeyOf, ROLLBACK_ACTOR } from './rollback';
export type { FlagRollbackMonitor } from './rollback';
export { flagDefinition, flagDefinitionSchema, flagKeySchema, switchChange, switchChangeSchema, switchTargetSchema } from './schemas';
