import { afipSyncRequestSchema, type AfipSyncRequest } from '@jobfleet/contracts';
import { afipIssuerRepository } from '@jobfleet/db';
import { AdmissionRefusal, type KindIntake } from '../define';

export const AFIP_INVOICE_SYNC_KIND = 'afip-invoice';

export const requestSchema = afipSyncRequestSchema;

/** How the API takes invoices: one authorisation per invoice, only under a CUIT the tenant owns. */
export const intake: KindIntake<AfipSyncRequest> = {
  summary: 'Queue an invoice for AFIP authorisation (CAE)',
  entityId: (request) => request.invoiceId,
  // Invoices have no versions: one authorisation per invoice.
  version: () => 0,
  defaultIdempotencyKey: (request) => `invoice:${request.invoiceId}`,
  defaultKeyDescription: '`invoice:<invoiceId>`',
  jobName: () => 'authorize',
  requiredScope: 'jobs:write',
  admissionKey: (request) => String(request.cuit),
  async admit({ db, tenantId }, request) {
    if (!(await afipIssuerRepository.isOwnedBy(db, tenantId, request.cuit))) {
      throw new AdmissionRefusal(403, '/problems/connection-not-owned', `Tenant "${tenantId}" has no AFIP issuer with CUIT ${request.cuit}`);
    }
  },
};
