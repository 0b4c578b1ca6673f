import { DependencyUnavailableError, PermanentError, type AfipSyncRequest, type AfipSyncResult } from '@jobfleet/contracts';
import { z } from 'zod';
import { RoundCallFailedError } from './errors';
import type { TicketProvider } from './ticket-provider';
import { vouchersPerRequest } from './voucher-lots';
import { WsfeTokenRejectedError, type AfipMessage, type AuthorizedInvoice, type CaeLotResult, type WsfeAuth, type WsfeClient, type WsfeInvoice } from './wsfe';

/**
 * The invoice rows, implemented by @jobfleet/db's afipInvoiceRepository (bound to a database).
 * Every write carries the voucher lock's fencing token and is refused once a newer holder wrote.
 */
export interface InvoiceStore {
  findByIdempotencyKeys(tenantId: string, idempotencyKeys: readonly string[]): Promise<StoredInvoice[]>;
  /** The series' known last number (null: never learnt) and its open reservations, by number. */
  seriesState(key: VoucherKey): Promise<{ lastCbteNro: number | null; reserved: StoredInvoice[] }>;
  reserveLot(key: VoucherKey, fencingToken: number, lot: { idempotencyKey: string; jobId: string; cbteNro: number; request: unknown }[]): Promise<StoredInvoice[]>;
  settleLot(key: VoucherKey, fencingToken: number, settlement: Settlement): Promise<void>;
}

/** What one request (or one recovery) settled; `lastCbteNro` null forgets the known last number, omitted keeps it. */
export interface Settlement {
  authorized: { id: string; cbteNro: number; cae: string; caeDueDate: string; response: unknown }[];
  rejected: { id: string; response: unknown }[];
  released: string[];
  lastCbteNro?: number | null;
}

/** A numbering sequence: one tenant's CUIT, point of sale and voucher type (two tenants never share one). */
export interface VoucherKey {
  tenantId: string;
  cuit: number;
  ptoVta: number;
  cbteTipo: number;
}

export interface StoredInvoice extends VoucherKey {
  id: string;
  idempotencyKey: string;
  cbteNro: number;
  status: 'reserved' | 'authorized' | 'rejected' | 'released';
  cae: string | null;
  caeDueDate: string | null;
  request: unknown;
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
  /** Runs `fn` under the fleet-wide lock `key` (taken for `tenantId`'s series). */
  withLock<T>(key: string, tenantId: string, fn: (lock: HeldLock) => Promise<T>): Promise<T>;
  /** Cap on vouchers per FECAESolicitar (`AFIP_BATCH_MAX_VOUCHERS`); 1 sends one at a time. Default: FECompTotXRequest's answer. */
  maxVouchersPerRequest?: number | undefined;
}

export interface AuthorizeInvoiceJob {
  tenantId: string;
  idempotencyKey: string;
  jobId: string;
  request: AfipSyncRequest;
}

export interface InvoiceAuthorizer {
  /** The CAE of one invoice, obtained exactly once however often its job runs. */
  authorize(job: AuthorizeInvoiceJob): Promise<AfipSyncResult>;
}

/** The lock that serialises numbering of one tenant's (CUIT, point of sale, voucher type) across the fleet. */
export function voucherLockKey(key: VoucherKey): string {
  return `afip-voucher:${key.tenantId}:${key.cuit}:${key.ptoVta}:${key.cbteTipo}`;
}

/** WSFEv1 validation 10016: the number (or date) is not the next one AFIP expects. */
const NUMBERING_ERROR = 10016;
/** Rounds (requests) one lock holding serves before the lock is released, so other workers get turns. */
const ROUNDS_PER_HOLD = 4;
/** FECompConsultar calls in flight at once while recovering a dead holder's lot. */
const RECOVERY_CONCURRENCY = 10;

interface Waiting {
  job: AuthorizeInvoiceJob;
  resolve(result: AfipSyncResult): void;
  reject(error: unknown): void;
}

/** What the fleet knows of a series before numbering (InvoiceStore.seriesState). */
interface SeriesState {
  lastCbteNro: number | null;
  reserved: StoredInvoice[];
}

/**
 * The series' writes of one lock hold, and its state read once per hold and then kept in step
 * with those writes: the lock and its fencing make the hold the series' only writer. A write that
 * fails may or may not have landed, so the state is read again after one.
 */
function heldSeries(store: InvoiceStore, key: VoucherKey, fencingToken: number) {
  let state: Promise<SeriesState> | undefined;
  const current = () =>
    (state ??= store.seriesState(key).catch((error: unknown) => {
      state = undefined;
      throw error;
    }));
  async function write<T>(work: () => Promise<T>, apply: (known: SeriesState, result: T) => void): Promise<T> {
    const known = await current();
    try {
      const result = await work();
      apply(known, result);
      return result;
    } catch (error) {
      state = undefined;
      throw error;
    }
  }
  return {
    current,
    reserveLot: (lot: Parameters<InvoiceStore['reserveLot']>[2]) =>
      write(
        () => store.reserveLot(key, fencingToken, lot),
        (known, rows) => {
          // A reused row (an earlier attempt of the invoice) replaces its older self.
          const ids = new Set(rows.map((row) => row.id));
          known.reserved = [...known.reserved.filter((row) => !ids.has(row.id)), ...rows].sort((a, b) => a.cbteNro - b.cbteNro);
        },
      ),
    settleLot: (settlement: Settlement) =>
      write(
        () => store.settleLot(key, fencingToken, settlement),
        (known) => {
          const settled = new Set([...settlement.authorized, ...settlement.rejected].map((row) => row.id).concat(settlement.released));
          known.reserved = known.reserved.filter((row) => !settled.has(row.id));
          if (settlement.lastCbteNro !== undefined) known.lastCbteNro = settlement.lastCbteNro;
        },
      ),
  };
}
type HeldSeries = ReturnType<typeof heldSeries>;

/** The fields of a stored request a voucher at AFIP must match to be this invoice's. */
const storedRequestSchema = z.object({
  date: z.string(),
  docType: z.number(),
  docNumber: z.number(),
  amounts: z.object({ total: z.number() }),
});

/**
 * Authorises invoices series by series, several per FECAESolicitar. Jobs of one series that this
 * process runs at the same time wait in one queue; one of them at a time takes the series' lock
 * and, holding it, sends the waiting invoices as lots of up to `vouchersPerRequest` (each job still
 * ends with its own invoice's outcome). Under the lock, before any new number: open reservations
 * left by a dead holder are looked up at AFIP (FECompConsultar) and settled; the last number comes
 * from Postgres, or from FECompUltimoAutorizado when unknown or after a numbering error (10016); the
 * lot's numbers are recorded in Postgres before the request is sent.
 */
/** A failure of a call made for all of `jobs`: an outage is charged to the first of them only (see RoundCallFailedError). */
function rejectRound(jobs: readonly Waiting[], error: unknown): void {
  jobs.forEach((waiting, index) => waiting.reject(index > 0 && error instanceof DependencyUnavailableError ? new RoundCallFailedError(error) : error));
}

export function createInvoiceAuthorizer(deps: AuthorizeInvoiceDeps): InvoiceAuthorizer {
  const queues = new Map<string, Waiting[]>();
  let regXReq: Promise<number> | undefined;

  async function lotSize(auth: WsfeAuth, cbteTipo: number): Promise<number> {
    if (deps.maxVouchersPerRequest === 1) return 1;
    // RegXReq is the service's, the same for every CUIT: asked once per process.
    regXReq ??= deps.wsfe.maxVouchersPerRequest(auth).catch((error: unknown) => {
      regXReq = undefined;
      throw error;
    });
    return vouchersPerRequest(cbteTipo, await regXReq, deps.maxVouchersPerRequest);
  }

  async function drain(lockKey: string, key: VoucherKey, queue: Waiting[]): Promise<void> {
    while (queue.length > 0) {
      try {
        await deps.withLock(lockKey, key.tenantId, async (lock) => {
          const series = heldSeries(deps.invoices, key, lock.fencingToken);
          for (let round = 0; round < ROUNDS_PER_HOLD && queue.length > 0; round++) await serveRound(key, lock, series, queue);
        });
      } catch (error) {
        // The lock was not had (busy: the jobs wait their turn) or was lost: every job still waiting shares the outcome.
        rejectRound(queue.splice(0), error);
      }
    }
    queues.delete(lockKey);
  }

  async function serveRound(key: VoucherKey, lock: HeldLock, series: HeldSeries, queue: Waiting[]): Promise<void> {
    const ticket = await deps.tickets.getTicket({ tenantId: key.tenantId, cuit: key.cuit });
    const auth = { token: ticket.token, sign: ticket.sign, cuit: key.cuit };
    const size = await lotSize(auth, key.cbteTipo);
    const round = takeRound(queue, size);
    try {
      await numberRound(key, lock, series, auth, round);
    } catch (error) {
      rejectRound(round, error);
    }
  }

  async function numberRound(key: VoucherKey, lock: HeldLock, series: HeldSeries, auth: WsfeAuth, round: Waiting[]): Promise<void> {
    let last = await recoverOpenReservations(key, series, auth);
    const stored = new Map(
      (await deps.invoices.findByIdempotencyKeys(key.tenantId, round.map((w) => w.job.idempotencyKey))).map((row) => [row.idempotencyKey, row]),
    );
    let pending: Waiting[] = [];
    for (const waiting of round) {
      const row = stored.get(waiting.job.idempotencyKey);
      if (row?.status === 'authorized' && row.cae && row.caeDueDate) {
        waiting.resolve({ ...voucherOf(key), cbteNro: row.cbteNro, cae: row.cae, caeDueDate: row.caeDueDate, recovered: true, observations: [] });
      } else {
        pending.push(waiting);
      }
    }
    let rechecked = false;
    while (pending.length > 0) {
      last ??= await deps.wsfe.lastAuthorized(auth, key.ptoVta, key.cbteTipo);
      const from = last + 1;
      const rows = await series.reserveLot(
        pending.map((w, i) => ({ idempotencyKey: w.job.idempotencyKey, jobId: w.job.jobId, cbteNro: from + i, request: w.job.request })),
      );
      if (lock.signal.aborted) {
        throw new DependencyUnavailableError('afip-lock', 'voucher lock lost before requesting the CAE; retrying', { cause: lock.signal.reason });
      }
      const answer = await deps.wsfe.requestCae(auth, pending.map((w, i) => toWsfeInvoice(w.job.request, from + i)));
      const verdict = readLot(answer);
      const approved = answer.vouchers.slice(0, verdict.approved);
      const lastApproved = verdict.approved > 0 ? from + verdict.approved - 1 : last;
      const settlement: Settlement = {
        authorized: approved.map((v, i) => ({ id: rows[i]?.id ?? '', cbteNro: v.cbteNro, cae: v.cae ?? '', caeDueDate: v.caeDueDate ?? '', response: v })),
        rejected: [],
        released: [],
        lastCbteNro: lastApproved,
      };
      const rest = pending.slice(verdict.approved);
      const restRows = rows.slice(verdict.approved);
      if (verdict.numberingError && !rechecked) {
        // Our known last number may be stale (vouchers issued outside the fleet): ask AFIP once, renumber, send again.
        rechecked = true;
        const atAfip = await deps.wsfe.lastAuthorized(auth, key.ptoVta, key.cbteTipo);
        if (atAfip !== lastApproved) {
          await series.settleLot({ ...settlement, released: restRows.map((r) => r.id), lastCbteNro: atAfip });
          resolveApproved(key, pending, approved);
          last = atAfip;
          pending = rest;
          continue;
        }
      }
      // The lot's first rejection stops it: that voucher fails, the ones after it were not evaluated and go again, renumbered.
      const rejectedCount = verdict.lotRefused ? rest.length : Math.min(1, rest.length);
      settlement.rejected = restRows.slice(0, rejectedCount).map((row, i) => ({ id: row.id, response: rejectionOf(answer, verdict.approved + i) }));
      settlement.released = restRows.slice(rejectedCount).map((row) => row.id);
      await series.settleLot(settlement);
      resolveApproved(key, pending, approved);
      rest.slice(0, rejectedCount).forEach((waiting, i) => waiting.reject(rejectionError(answer, verdict.approved + i)));
      last = lastApproved;
      pending = rest.slice(rejectedCount);
    }
  }

  /**
   * Settles the reservations a dead (or fenced-out) holder left open: each is looked up at AFIP and
   * recorded as authorised when AFIP has a voucher with that number matching the invoice, released
   * otherwise. Returns the series' last number as now known (null when unknown).
   */
  async function recoverOpenReservations(key: VoucherKey, series: HeldSeries, auth: WsfeAuth): Promise<number | null> {
    const state = await series.current();
    if (state.reserved.length === 0) return state.lastCbteNro;
    const found: (AuthorizedInvoice | null)[] = [];
    for (let i = 0; i < state.reserved.length; i += RECOVERY_CONCURRENCY) {
      const chunk = state.reserved.slice(i, i + RECOVERY_CONCURRENCY);
      found.push(...(await Promise.all(chunk.map((row) => deps.wsfe.getInvoice(auth, key.ptoVta, key.cbteTipo, row.cbteNro)))));
    }
    const settlement: Settlement = { authorized: [], rejected: [], released: [] };
    let last = state.lastCbteNro;
    let trusted = true;
    for (const [i, row] of state.reserved.entries()) {
      const voucher = found[i];
      if (voucher && voucher.result === 'A' && voucher.authorizationDueDate && isVoucherOf(row.request, voucher)) {
        settlement.authorized.push({
          id: row.id,
          cbteNro: row.cbteNro,
          cae: voucher.authorizationCode,
          caeDueDate: voucher.authorizationDueDate,
          response: { recoveredFrom: 'FECompConsultar', voucher },
        });
        last = Math.max(last ?? 0, row.cbteNro);
      } else {
        settlement.released.push(row.id);
        // AFIP has this number for another voucher: what we knew of the series is wrong.
        if (voucher) trusted = false;
      }
    }
    settlement.lastCbteNro = trusted ? last : null;
    await series.settleLot(settlement);
    return settlement.lastCbteNro;
  }

  return {
    async authorize(job) {
      const { request } = job;
      const key: VoucherKey = { tenantId: job.tenantId, cuit: request.cuit, ptoVta: request.ptoVta, cbteTipo: request.cbteTipo };
      // Checked before anything else, the lock included: a tenant never acts under another's CUIT.
      if (!(await deps.ownsIssuer(job.tenantId, request.cuit))) {
        throw new PermanentError('AFIP_ISSUER_NOT_OWNED', `tenant ${job.tenantId} has no AFIP issuer with CUIT ${request.cuit}`, {
          details: { cuit: request.cuit },
        });
      }
      const lockKey = voucherLockKey(key);
      const outcome = new Promise<AfipSyncResult>((resolve, reject) => {
        const queue = queues.get(lockKey);
        if (queue) {
          queue.push({ job, resolve, reject });
          return;
        }
        const fresh: Waiting[] = [{ job, resolve, reject }];
        queues.set(lockKey, fresh);
        void drain(lockKey, key, fresh);
      });
      try {
        return await outcome;
      } catch (error) {
        // WSFE refused the cached ticket before its time: the retry must log in again.
        if (error instanceof WsfeTokenRejectedError) await deps.tickets.invalidate({ tenantId: job.tenantId, cuit: request.cuit });
        throw error;
      }
    },
  };
}

/**
 * Up to `size` waiting invoices off the front of `queue`, one per invoice: a job BullMQ handed out
 * again while its first run still waits here stays queued for the next round (it then finds its
 * invoice settled).
 */
function takeRound(queue: Waiting[], size: number): Waiting[] {
  const keys = new Set<string>();
  const round: Waiting[] = [];
  for (let i = 0; i < queue.length && round.length < size; ) {
    const waiting = queue[i];
    if (waiting && !keys.has(waiting.job.idempotencyKey)) {
      keys.add(waiting.job.idempotencyKey);
      round.push(waiting);
      queue.splice(i, 1);
    } else {
      i++;
    }
  }
  return round;
}

/** How a lot's answer splits: the approved prefix, and whether the first rejection is a numbering error or the lot was refused whole. */
function readLot(answer: CaeLotResult): { approved: number; numberingError: boolean; lotRefused: boolean } {
  const firstRejected = answer.vouchers.findIndex((v) => v.result === 'R');
  const approved = firstRejected === -1 ? answer.vouchers.length : firstRejected;
  const rejected = answer.vouchers[approved];
  const reasons = [...answer.errors, ...(rejected?.observations ?? [])];
  return {
    approved,
    numberingError: reasons.some((m) => m.code === NUMBERING_ERROR),
    // Errors with no verdict on any voucher refuse the lot as a whole (CantReg rules): every voucher fails with them.
    lotRefused: approved === 0 && answer.errors.length > 0 && answer.vouchers.every((v) => v.observations.length === 0),
  };
}

function resolveApproved(key: VoucherKey, pending: Waiting[], approved: CaeLotResult['vouchers']): void {
  approved.forEach((voucher, i) => {
    pending[i]?.resolve({
      ...voucherOf(key),
      cbteNro: voucher.cbteNro,
      cae: voucher.cae ?? '',
      caeDueDate: voucher.caeDueDate ?? '',
      recovered: false,
      observations: voucher.observations,
    });
  });
}

function rejectionOf(answer: CaeLotResult, index: number): { result: 'R'; cbteNro: number | undefined; errors: AfipMessage[]; observations: AfipMessage[]; events: AfipMessage[] } {
  const voucher = answer.vouchers[index];
  return { result: 'R', cbteNro: voucher?.cbteNro, errors: answer.errors, observations: voucher?.observations ?? [], events: answer.events };
}

function rejectionError(answer: CaeLotResult, index: number): PermanentError {
  const { cbteNro, errors, observations } = rejectionOf(answer, index);
  const codes = [...errors, ...observations].map((m) => `${m.code}: ${m.message}`).join('; ');
  return new PermanentError('AFIP_REJECTED', `AFIP rejected voucher ${cbteNro ?? '?'}: ${codes || 'no reason given'}`, {
    details: { cbteNro, errors, observations },
  });
}

/** Whether the voucher AFIP has under a reserved number is this invoice (amount, date, receptor), not another's. */
function isVoucherOf(storedRequest: unknown, voucher: AuthorizedInvoice): boolean {
  const parsed = storedRequestSchema.safeParse(storedRequest);
  if (!parsed.success) return false;
  const request = parsed.data;
  return (
    Math.abs(request.amounts.total - voucher.total) < 0.005 &&
    compactDate(request.date) === voucher.date &&
    request.docType === voucher.docType &&
    request.docNumber === voucher.docNumber
  );
}

/** The voucher as the job's result names it (the tenant is the job's own). */
const voucherOf = ({ cuit, ptoVta, cbteTipo }: VoucherKey) => ({ cuit, ptoVta, cbteTipo });

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
