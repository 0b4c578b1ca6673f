import type { Job } from 'bullmq';
import { tenantOf } from './job-tenant';
import type { TenantCapacity } from './tenant-capacity';
import type { AttemptGate } from './worker';

export interface TenantGateOptions {
  kind: string;
  capacity: TenantCapacity;
  /** The tenant's fleet-wide running-jobs quota for this kind. */
  maxRunningJobs(tenantId: string): Promise<number>;
  /** How long a slot is held at most: the kind's attempt timeout and a margin, so a crashed worker's slot comes back. */
  leaseMs: number;
}

// A refused job waits this long per round of the tenant's running slots ahead of it, up to the cap:
// jobs deep in a tenant's backlog are not picked up and put back over and over.
const DEFER_PER_ROUND_MS = 250;
const MAX_DEFER_MS = 30_000;

/**
 * A tenant's running-jobs quota enforced across every worker of the fleet: an attempt runs only in
 * one of the tenant's slots (a lease in Redis); otherwise the job is re-delayed, no attempt spent,
 * and other tenants' jobs are taken meanwhile. Jobs without a tenant (scheduled backups) pass.
 */
export function tenantAttemptGate(options: TenantGateOptions): AttemptGate {
  const { kind, capacity } = options;
  const refOf = (job: Job, tenantId: string) => ({ kind, tenantId, jobId: job.id ?? '' });
  return {
    async enter(job) {
      const tenantId = tenantOf(job.data);
      if (tenantId === undefined || job.id === undefined) return undefined;
      const limit = await options.maxRunningJobs(tenantId);
      const slot = await capacity.enter(refOf(job, tenantId), limit, options.leaseMs);
      if (slot.entered) return undefined;
      return { delayMs: Math.min(MAX_DEFER_MS, DEFER_PER_ROUND_MS * (1 + Math.floor(slot.ahead / limit))), reason: 'tenant-capacity' };
    },
    async leave(job, finished) {
      const tenantId = tenantOf(job.data);
      if (tenantId === undefined || job.id === undefined) return;
      await capacity.leave(refOf(job, tenantId), finished);
    },
  };
}
