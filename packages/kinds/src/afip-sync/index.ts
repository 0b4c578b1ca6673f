import { defineJobKind } from '../define';
import { AFIP_INVOICE_SYNC_KIND, intake, requestSchema } from './intake';

/** Invoices -> AFIP (WSAA login + WSFEv1 CAE), under the tenant's own issuer certificate. */
export const afipSync = defineJobKind({
  name: 'afip-sync',
  requestSchema,
  syncKind: AFIP_INVOICE_SYNC_KIND,
  intake,
  // A few AFIP calls of AFIP_TIMEOUT_SECONDS each, plus the wait for the numbering lock.
  attemptTimeoutMs: () => 180_000,
  worker: async () => (await import('./worker')).afipSyncWorker,
});
