import { afipSyncRequestSchema } from '@jobfleet/contracts';
import { afipIssuerRepository } from '@jobfleet/db';
import { AdmissionRefusal, defineJobKind } from '../define';

/** Invoices -> AFIP (WSAA login + WSFEv1 CAE), under the tenant's own issuer certificate. */
export const afipSync = defineJobKind({
  name: 'afip-sync',
  requestSchema: afipSyncRequestSchema,
  syncKind: 'afip-invoice',
  intake: {
    summary: 'Queue an invoice for AFIP authorisation (CAE)',
    entityId: (request) => request.invoiceId,
    // Invoices have no versions: one authorisation per invoice.
    version: () => 0,
    defaultIdempotencyKey: (request) => `invoice:${request.invoiceId}`,
    defaultKeyDescription: '`invoice:<invoiceId>`',
    jobName: () => 'authorize',
    requiredScope: 'jobs:write',
    async admit({ db, tenantId }, request) {
      if (!(await afipIssuerRepository.isOwnedBy(db, tenantId, request.cuit))) {
        throw new AdmissionRefusal(403, '/problems/connection-not-owned', `Tenant "${tenantId}" has no AFIP issuer with CUIT ${request.cuit}`);
      }
    },
  },
  // A few AFIP calls of AFIP_TIMEOUT_SECONDS each, plus the wait for the numbering lock.
  attemptTimeoutMs: () => 180_000,
  worker: async () => (await import('./worker')).afipSyncWorker,
});
