import { authorizeInvoice, type InvoiceStore, type TicketProvider, type WsfeClient } from '@jobfleet/afip';
import { afipSyncJobSchema, QUEUES, type AfipSyncResult } from '@jobfleet/contracts';
import { afipInvoiceRepository, type Db } from '@jobfleet/db';
import type { LockManager } from '@jobfleet/locks';
import type { JobProcessor } from '@jobfleet/queue';
import { parsePayload, trackSyncStatus, type SyncTrackingDeps } from '../sync-tracking';
import type { TenantConnections } from '../tenant-connections';

export interface AfipSyncDeps extends SyncTrackingDeps {
  connections: Pick<TenantConnections, 'ownsIssuer'>;
  locks: LockManager;
  afip: { wsfe: WsfeClient; tickets: TicketProvider; lockWaitMs: number; lockTtlMs: number };
}

function invoiceStore(db: Db): InvoiceStore {
  return {
    findByIdempotencyKey: (tenantId, key) => afipInvoiceRepository.findByIdempotencyKey(db, tenantId, key),
    reserve: (input) => afipInvoiceRepository.reserve(db, input),
    releaseDeadReservations: (key, fromNumber, fencingToken) => afipInvoiceRepository.releaseDeadReservations(db, key, fromNumber, fencingToken),
    markAuthorized: (row, result) => afipInvoiceRepository.markAuthorized(db, row, result),
    markRejected: (row, response) => afipInvoiceRepository.markRejected(db, row, response),
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
    // A busy voucher lock (another worker is numbering this series) is a LockUnavailableError: the
    // attempt policy makes the job wait its turn without spending an attempt.
    return trackSyncStatus(deps, entity, context, async () => {
      const result = await authorizeInvoice(
        { tenantId: data.tenantId, idempotencyKey: data.idempotencyKey, jobId, request: data.request },
        {
          ownsIssuer: (tenantId, cuit) => deps.connections.ownsIssuer(tenantId, cuit),
          wsfe: deps.afip.wsfe,
          tickets: deps.afip.tickets,
          invoices,
          withLock: (key, fn) =>
            deps.locks.withLock(key, { waitMs: deps.afip.lockWaitMs, ttlMs: deps.afip.lockTtlMs, jobId, tenantId: data.tenantId }, fn),
        },
      );
      return { result, externalRef: result.cae };
    });
  };
}
