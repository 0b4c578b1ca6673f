export { createFleetControls, fleetControlsChannel } from './live';
export type { FleetControls } from './live';
export { openFlagClient } from './flag-client';
export { createFlagRollbackMonitor, JOB_KEY_ATTRIBUTE, jobKeyOf } from './rollback';
export { flagDefinition, flagDefinitionSchema, flagKeySchema, switchChange, switchChangeSchema, switchTargetSchema } from './schemas';
