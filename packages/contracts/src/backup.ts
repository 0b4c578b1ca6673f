import { z } from 'zod';

/** Same rule as config's BACKUP_DEFINITION_NAME (a contracts test keeps them equal). */
export const BACKUP_DEFINITION_NAME = /^[a-z0-9]+(?:[-_][a-z0-9]+)*$/;

/**
 * `POST /v1/jobs/backup`: run a configured backup definition now (`backup`), or check its newest
 * successful backup again (`verify`: a restore check on its own, as a definition's `verify` schedule runs).
 */
export const backupRequestSchema = z
  .strictObject({
    definition: z.string().max(63).regex(BACKUP_DEFINITION_NAME, 'must name a configured backup definition'),
    action: z.enum(['backup', 'verify']).optional(),
    // Overrides the definition's restore check for this run.
    restoreCheck: z.enum(['none', 'list', 'full']).optional(),
  })
  .refine((request) => request.action !== 'verify' || request.restoreCheck !== 'none', {
    path: ['restoreCheck'],
    error: 'a verify run is a restore check: use list or full',
  });

/**
 * On-demand jobs carry who asked (tenantId, idempotencyKey); scheduled jobs, created by the
 * definition's job scheduler, carry only the request and take their slot from the job id.
 */
export const backupJobSchema = z.object({
  tenantId: z.string().min(1).optional(),
  idempotencyKey: z.string().min(1).optional(),
  request: backupRequestSchema,
  enqueuedAt: z.iso.datetime().optional(),
  // The API request that enqueued it (X-Request-Id), for the worker's logs.
  requestId: z.string().optional(),
});
export type BackupJob = z.infer<typeof backupJobSchema>;

export interface BackupResult {
  backupId: string;
  /** skipped: this schedule slot already has a finished or running run; verified: a verify run passed. */
  outcome: 'succeeded' | 'skipped' | 'verified';
  location: string | null;
  bytes: number | null;
  sha256: string | null;
}
