import { tenantOf } from './job-tenant';
import type { AttemptGate, GateDeferral } from './worker';

// A paused job comes back this often (jittered up to half as much again) to see whether the pause is over.
const PAUSED: GateDeferral = { delayMs: 5000, reason: 'paused' };

/**
 * Holds back the jobs for which `isPaused(their tenant)` holds (a paused tenant, or the whole kind
 * while its worker is being paused). BullMQ cannot choose which job a worker fetches, so a paused
 * job that is picked goes back to delayed without spending an attempt, as a tenant over its
 * running quota does, and runs once the pause is over. Other jobs pass on to `inner`.
 */
export function pausableGate(isPaused: (tenantId: string | undefined) => boolean, inner?: AttemptGate): AttemptGate {
  return {
    async enter(job) {
      if (isPaused(tenantOf(job.data))) return PAUSED;
      return inner?.enter(job);
    },
    async leave(job, finished) {
      await inner?.leave(job, finished);
    },
  };
}
