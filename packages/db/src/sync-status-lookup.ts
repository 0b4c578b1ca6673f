import { and, eq } from 'drizzle-orm';
import type { Db } from './client';
import { syncStatus } from './schema';
import type { SyncStatusRow } from './sync-status';

/**
 * The tenant's sync row last written by this job, if the row still names it (a later version's job
 * takes the row over). Serves job lookups once Redis no longer retains the job.
 */
export async function findSyncStatusByJobId(db: Db, tenantId: string, jobId: string): Promise<SyncStatusRow | undefined> {
  const rows = await db
    .select()
    .from(syncStatus)
    .where(and(eq(syncStatus.tenantId, tenantId), eq(syncStatus.jobId, jobId)))
    .limit(1);
  return rows[0];
}
