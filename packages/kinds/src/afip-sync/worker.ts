import {
  createInvoiceAuthorizer,
  createTicketProvider,
  createWsaaClient,
  createWsfeClient,
  type InvoiceStore,
  type WsaaClient,
  type WsaaCredentials,
  type WsfeClient,
} from '@jobfleet/afip';
import { PermanentError, type AfipSyncResult } from '@jobfleet/contracts';
import { afipInvoiceRepository, afipIssuerRepository, type Db } from '@jobfleet/db';
import type { DependencyGuard } from '@jobfleet/resilience';
import { jobDataSchema, type KindWorker } from '../define';
import { parsePayload, syncEntityOf, trackSyncStatus } from '../sync-tracking';
import { createTenantCache } from '../tenant-cache';
import { intake, requestSchema, AFIP_INVOICE_SYNC_KIND } from './intake';

const jobSchema = jobDataSchema(requestSchema);
const syncEntity = { name: 'afip-sync', syncKind: AFIP_INVOICE_SYNC_KIND, intake };

// A WSAA login is one slow call; others wait for it and then read the shared ticket.
const LOGIN_LOCK = { waitMs: 30_000, ttlMs: 60_000 };

// Idempotent here means repeating it cannot produce a second effect: FECAESolicitar and the WSAA
// login are not (a second login is refused while a ticket is valid), so only reads are retried.
function guardWsaa(client: WsaaClient, guard: DependencyGuard): WsaaClient {
  return { login: (cms) => guard.call('loginCms', () => client.login(cms)) };
}

function guardWsfe(client: WsfeClient, guard: DependencyGuard): WsfeClient {
  const idempotent = { idempotent: true };
  return {
    dummy: () => guard.call('FEDummy', () => client.dummy(), idempotent),
    lastAuthorized: (auth, ptoVta, cbteTipo) => guard.call('FECompUltimoAutorizado', () => client.lastAuthorized(auth, ptoVta, cbteTipo), idempotent),
    requestCae: (auth, invoices) => guard.call('FECAESolicitar', () => client.requestCae(auth, invoices)),
    maxVouchersPerRequest: (auth) => guard.call('FECompTotXRequest', () => client.maxVouchersPerRequest(auth), idempotent),
    getInvoice: (auth, ptoVta, cbteTipo, cbteNro) =>
      guard.call('FECompConsultar', () => client.getInvoice(auth, ptoVta, cbteTipo, cbteNro), idempotent),
    salesPoints: (auth) => guard.call('FEParamGetPtosVenta', () => client.salesPoints(auth), idempotent),
  };
}

function invoiceStore(db: Db): InvoiceStore {
  return {
    findByIdempotencyKeys: (tenantId, keys) => afipInvoiceRepository.findByIdempotencyKeys(db, tenantId, keys),
    seriesState: (key) => afipInvoiceRepository.seriesState(db, key),
    reserveLot: (key, fencingToken, lot) => afipInvoiceRepository.reserveLot(db, key, fencingToken, lot),
    settleLot: (key, fencingToken, settlement) => afipInvoiceRepository.settleLot(db, key, fencingToken, settlement),
  };
}

export const afipSyncWorker: KindWorker = {
  start({ config, database, guards, keyring, logger, metrics, redis, locks }) {
    const { afip } = config;
    const wsfe = guardWsfe(createWsfeClient({ url: afip.wsfeUrl, timeoutMs: afip.timeoutMs }), guards['afip-wsfe']);
    const wsaa = guardWsaa(createWsaaClient({ url: afip.wsaaUrl, timeoutMs: afip.timeoutMs }), guards['afip-wsaa']);
    // The tenant's own certificate per CUIT, decrypted on first use: a CUIT is only ever used by its owner.
    const issuers = createTenantCache<WsaaCredentials>({
      ttlMs: config.connectionCacheMs,
      load: (key) => {
        const [tenantId, cuit] = JSON.parse(key) as [string, number];
        return guards.postgres.call('loadAfipIssuer', () => afipIssuerRepository.credentials(database.db, keyring, tenantId, cuit), { idempotent: true });
      },
    });
    const issuer = (tenantId: string, cuit: number) => issuers.get(JSON.stringify([tenantId, cuit]));
    const tickets = createTicketProvider({
      redis: redis.main,
      keyPrefix: config.redis.prefix,
      wsaa,
      credentials: async ({ tenantId, cuit }) => {
        const credentials = await issuer(tenantId, cuit);
        if (credentials === undefined) throw new PermanentError('AFIP_ISSUER_NOT_OWNED', `tenant ${tenantId} has no AFIP issuer with CUIT ${cuit}`, { details: { cuit } });
        return credentials;
      },
      withLock: (key, fn) => locks().withLock(key, LOGIN_LOCK, () => fn()),
      refreshMarginSeconds: afip.ticketRefreshMarginSeconds,
      lostTicketRecheckMs: afip.lostTicketRecheckMs,
      onTicket: (result) => metrics.wsaaTickets.inc({ result }),
    });
    // One authorizer per process: the jobs of a series that run here at the same time share its lots.
    const authorizer = createInvoiceAuthorizer({
      ownsIssuer: async (owner, cuit) => (await issuer(owner, cuit)) !== undefined,
      wsfe,
      tickets,
      invoices: invoiceStore(database.db),
      // A lot serves many jobs, so the lock's audit names the tenant, not one job.
      withLock: (key, tenantId, fn) => locks().withLock(key, { waitMs: afip.lockWaitMs, ttlMs: afip.lockTtlMs, tenantId }, fn),
      maxVouchersPerRequest: afip.batchMaxVouchers,
    });
    const deps = { database, logger, postgres: guards.postgres };
    return Promise.resolve({
      processor: async (job, context): Promise<AfipSyncResult> => {
        const data = parsePayload(jobSchema, job.data);
        const jobId = job.id ?? 'unknown';
        const { tenantId } = data;
        // A busy voucher lock (another worker is numbering this series) is a LockUnavailableError: the
        // attempt policy makes the job wait its turn without spending an attempt.
        return trackSyncStatus(deps, syncEntityOf(syncEntity, tenantId, data.request, job), context, async () => {
          const result = await authorizer.authorize({ tenantId, idempotencyKey: data.idempotencyKey, jobId, request: data.request });
          return { result, externalRef: result.cae };
        });
      },
    });
  },
};
