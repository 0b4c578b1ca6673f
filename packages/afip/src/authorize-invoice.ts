import { DependencyUnavailableError, PermanentError, type AfipSyncRequest, type AfipSyncResult } from '@jobfleet/contracts';
import type { TicketProvider } from './ticket-provider';
import { WsfeTokenRejectedError, type CaeResult, type WsfeClient, type WsfeInvoice } from './wsfe';

/**
 * The invoice rows, implemented by @jobfleet/db's afipInvoiceRepository (bound to a database).
 * Every write carries the voucher lock's fencing token and is refused once a newer holder wrote.
 */
export interface InvoiceStore {
  findByIdempotencyKey(tenantId: string, idempotencyKey: string): Promise<StoredInvoice | undefined>;
  reserve(input: VoucherKey & { idempotencyKey: string; jobId: string; cbteNro: number; request: unknown; fencingToken: number }): Promise<StoredInvoice>;
  releaseDeadReservations(key: VoucherKey, fromNumber: number, fencingToken: number): Promise<number>;
  markAuthorized(row: FencedRow, result: { cbteNro: number; cae: string; caeDueDate: string; response: unknown }): Promise<void>;
  markRejected(row: FencedRow, response: unknown): Promise<void>;
}

/** A numbering sequence: one tenant's CUIT, point of sale and voucher type (two tenants never share one). */
export interface VoucherKey {
  tenantId: string;
  cuit: number;
  ptoVta: number;
  cbteTipo: number;
}

/** An invoice row and the lock token its write is fenced by. */
export interface FencedRow {
  id: string;
  key: VoucherKey;
  fencingToken: number;
}

export interface StoredInvoice extends VoucherKey {
  id: string;
  cbteNro: number;
  status: 'reserved' | 'authorized' | 'rejected' | 'released';
  cae: string | null;
  caeDueDate: string | null;
  response: unknown;
}

/** A held fleet-wide lock: `signal` aborts if it is lost, and then we must not call AFIP. */
export interface HeldLock {
  signal: AbortSignal;
  fencingToken: number;
}

export interface AuthorizeInvoiceDeps {
  /** Whether the tenant owns the issuing CUIT (an AFIP issuer connection of its own). */
  ownsIssuer(tenantId: string, cuit: number): Promise<boolean>;
  wsfe: WsfeClient;
  tickets: Pick<TicketProvider, 'getTicket' | 'invalidate'>;
  invoices: InvoiceStore;
  withLock<T>(key: string, fn: (lock: HeldLock) => Promise<T>): Promise<T>;
}

export interface AuthorizeInvoiceJob {
  tenantId: string;
  idempotencyKey: string;
  jobId: string;
  request: AfipSyncRequest;
}

/** The lock that serialises numbering of one tenant's (CUIT, point of sale, voucher type) across the fleet. */
export function voucherLockKey(key: VoucherKey): string {
  return `afip-voucher:${key.tenantId}:${key.cuit}:${key.ptoVta}:${key.cbteTipo}`;
}

/**
 * Obtains the CAE of one invoice exactly once, however often the job runs. Under the voucher
 * key's lock: an invoice that already has a number is first looked up at AFIP (a run that died
 * after AFIP authorised it must not create a second voucher); otherwise the next number is read
 * from AFIP, reserved in Postgres, and requested.
 */
export async function authorizeInvoice(job: AuthorizeInvoiceJob, deps: AuthorizeInvoiceDeps): Promise<AfipSyncResult> {
  const { request } = job;
  const key: VoucherKey = { tenantId: job.tenantId, cuit: request.cuit, ptoVta: request.ptoVta, cbteTipo: request.cbteTipo };
  // Checked before anything else, the lock included: a tenant never acts under another's CUIT.
  if (!(await deps.ownsIssuer(job.tenantId, request.cuit))) {
    throw new PermanentError('AFIP_ISSUER_NOT_OWNED', `tenant ${job.tenantId} has no AFIP issuer with CUIT ${request.cuit}`, {
      details: { cuit: request.cuit },
    });
  }
  const issuer = { tenantId: job.tenantId, cuit: request.cuit };
  try {
    return await deps.withLock(voucherLockKey(key), (lock) => authorizeLocked(job, key, lock, deps));
  } catch (error) {
    // WSFE refused the cached ticket before its time: the retry must log in again.
    if (error instanceof WsfeTokenRejectedError) await deps.tickets.invalidate(issuer);
    throw error;
  }
}

async function authorizeLocked(job: AuthorizeInvoiceJob, key: VoucherKey, lock: HeldLock, deps: AuthorizeInvoiceDeps): Promise<AfipSyncResult> {
  const { request } = job;
  const ticket = await deps.tickets.getTicket({ tenantId: key.tenantId, cuit: key.cuit });
  const auth = { token: ticket.token, sign: ticket.sign, cuit: key.cuit };
  const fencingToken = lock.fencingToken;
  const existing = await deps.invoices.findByIdempotencyKey(job.tenantId, job.idempotencyKey);
  if (existing?.status === 'authorized' && existing.cae && existing.caeDueDate) {
    return { ...voucherOf(key), cbteNro: existing.cbteNro, cae: existing.cae, caeDueDate: existing.caeDueDate, recovered: true, observations: [] };
  }
  if (existing?.status === 'reserved') {
    const atAfip = await deps.wsfe.getInvoice(auth, key.ptoVta, key.cbteTipo, existing.cbteNro);
    if (atAfip !== null && atAfip.result === 'A' && atAfip.authorizationDueDate) {
      // The earlier run got its CAE and died before recording it.
      const recovered = { cbteNro: existing.cbteNro, cae: atAfip.authorizationCode, caeDueDate: atAfip.authorizationDueDate };
      await deps.invoices.markAuthorized({ id: existing.id, key, fencingToken }, { ...recovered, response: { recoveredFrom: 'FECompConsultar', voucher: atAfip } });
      return { ...voucherOf(key), ...recovered, recovered: true, observations: atAfip.observations };
    }
  }

  const next = (await deps.wsfe.lastAuthorized(auth, key.ptoVta, key.cbteTipo)) + 1;
  // Reservations from `next` on belong to runs that died before AFIP took their number.
  await deps.invoices.releaseDeadReservations(key, next, fencingToken);
  const row = await deps.invoices.reserve({ ...key, idempotencyKey: job.idempotencyKey, jobId: job.jobId, cbteNro: next, request, fencingToken });
  if (lock.signal.aborted) {
    throw new DependencyUnavailableError('afip-lock', 'voucher lock lost before requesting the CAE; retrying', { cause: lock.signal.reason });
  }
  const answer = await deps.wsfe.requestCae(auth, toWsfeInvoice(request, next));
  return settle(deps.invoices, { id: row.id, key, fencingToken }, next, answer);
}

/** The voucher as the job's result names it (the tenant is the job's own). */
const voucherOf = ({ cuit, ptoVta, cbteTipo }: VoucherKey) => ({ cuit, ptoVta, cbteTipo });

async function settle(invoices: InvoiceStore, row: FencedRow, cbteNro: number, answer: CaeResult): Promise<AfipSyncResult> {
  const voucher = { ...voucherOf(row.key), cbteNro };
  if (answer.result !== 'R' && answer.cae && answer.caeDueDate) {
    await invoices.markAuthorized(row, { cbteNro, cae: answer.cae, caeDueDate: answer.caeDueDate, response: answer });
    return { ...voucher, cae: answer.cae, caeDueDate: answer.caeDueDate, recovered: false, observations: answer.observations };
  }
  await invoices.markRejected(row, answer);
  const codes = [...answer.errors, ...answer.observations].map((m) => `${m.code}: ${m.message}`).join('; ');
  throw new PermanentError('AFIP_REJECTED', `AFIP rejected voucher ${cbteNro}: ${codes || 'no reason given'}`, {
    details: { cbteNro, errors: answer.errors, observations: answer.observations },
  });
}

const compactDate = (isoDate: string) => isoDate.replaceAll('-', '');

/** The validated request as WSFEv1 wants it, with the number chosen under the lock. */
function toWsfeInvoice(request: AfipSyncRequest, cbteNro: number): WsfeInvoice {
  const { amounts } = request;
  const service =
    request.serviceFrom && request.serviceTo && request.paymentDue
      ? { from: compactDate(request.serviceFrom), to: compactDate(request.serviceTo), paymentDue: compactDate(request.paymentDue) }
      : undefined;
  return {
    ptoVta: request.ptoVta,
    cbteTipo: request.cbteTipo,
    cbteNro,
    concept: request.concept,
    docType: request.docType,
    docNumber: request.docNumber,
    date: compactDate(request.date),
    amounts: {
      total: amounts.total,
      untaxed: amounts.untaxed,
      net: amounts.net,
      exempt: amounts.exempt,
      iva: amounts.vat,
      otherTaxes: amounts.otherTaxes,
    },
    currency: request.currency,
    exchangeRate: request.exchangeRate,
    vat: request.vat.map((line) => ({ id: line.rateId, base: line.base, amount: line.amount })),
    ...(service ? { service } : {}),
  };
}
