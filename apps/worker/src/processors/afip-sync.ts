import { authorizeInvoice, type InvoiceStore, type TicketProvider, type WsfeClient } from '@jobfleet/afip';
import { afipSyncJobSchema, QUEUES, type AfipSyncResult } from '@jobfleet/contracts';
import { afipInvoiceRepository, type Db } from '@jobfleet/db';
import { LockUnavailableError, type LockManager } from '@jobfleet/locks';
import { deferWithoutAttempt, type JobProcessor } from '@jobfleet/queue';
import { parsePayload, trackSyncStatus, type SyncTrackingDeps } from '../sync-tracking';

export interface AfipSyncDeps extends SyncTrackingDeps {
  locks: LockManager;
  afip: { wsfe: WsfeClient; tickets: TicketProvider; lockWaitMs: number; lockTtlMs: number };
}

// Re-delay when the lock is busy: short, jittered, so waiting jobs spread out.
const LOCK_BUSY_DELAY_MS = 500;

function invoiceStore(db: Db): InvoiceStore {
  return {
    findByIdempotencyKey: (tenantId, key) => afipInvoiceRepository.findByIdempotencyKey(db, tenantId, key),
    reserve: (input) => afipInvoiceRepository.reserve(db, input),
    releaseDeadReservations: (key, fromNumber) => afipInvoiceRepository.releaseDeadReservations(db, key, fromNumber),
    markAuthorized: (id, result) => afipInvoiceRepository.markAuthorized(db, id, result),
    markRejected: (id, response) => afipInvoiceRepository.markRejected(db, id, response),
  };
}

/** Glue only: parse, authorise under the fleet-wide voucher lock, keep the invoice's sync_status true. */
export function afipSyncProcessor(deps: AfipSyncDeps): JobProcessor<unknown, unknown> {
  const invoices = invoiceStore(deps.database.db);
  return async (job, context): Promise<AfipSyncResult> => {
    const data = parsePayload(afipSyncJobSchema, job.data);
    const jobId = job.id ?? 'unknown';
    const entity = {
      tenantId: data.tenantId,
      kind: QUEUES['afip-sync'].syncKind,
      entityId: data.request.invoiceId,
      version: 0,
      jobId,
    };
    try {
      return await trackSyncStatus(deps, entity, context, async () => {
        const result = await authorizeInvoice(
          { tenantId: data.tenantId, idempotencyKey: data.idempotencyKey, jobId, request: data.request },
          {
            wsfe: deps.afip.wsfe,
            tickets: deps.afip.tickets,
            invoices,
            withLock: (key, fn) =>
              deps.locks.withLock(key, { waitMs: deps.afip.lockWaitMs, ttlMs: deps.afip.lockTtlMs, jobId, tenantId: data.tenantId }, fn),
          },
        );
        return { result, externalRef: result.cae };
      });
    } catch (error) {
      // Another worker is numbering this voucher key: wait our turn without spending an attempt.
      if (error instanceof LockUnavailableError) return deferWithoutAttempt(job, LOCK_BUSY_DELAY_MS);
      throw error;
    }
  };
}
