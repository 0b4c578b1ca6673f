import { z } from 'zod';
import { DependencyUnavailableError, JobfleetError, PermanentError } from '@jobfleet/contracts';
import { WSFE_DEPENDENCY, describeSoapFailure, toUnavailableError } from './errors';
import { createSoapService } from './soap-call';

/** The Auth block of every authenticated WSFE call: a WSAA ticket and the CUIT it acts for. */
export interface WsfeAuth {
  token: string;
  sign: string;
  cuit: number;
}

/** A code and text as AFIP sends them in Errors/Err, Observaciones/Obs and Events/Evt. */
export interface AfipMessage {
  code: number;
  message: string;
}

/** One voucher to authorise (a FECAEDetRequest of FECAESolicitar). Dates are AFIP's `YYYYMMDD`. */
export interface WsfeInvoice {
  ptoVta: number;
  /** FEParamGetTiposCbte: 1 factura A, 6 factura B, 11 factura C... */
  cbteTipo: number;
  /** Must be FECompUltimoAutorizado + 1 (error 10016 otherwise). */
  cbteNro: number;
  /** 1 products, 2 services, 3 both. */
  concept: 1 | 2 | 3;
  /** FEParamGetTiposDoc: 80 CUIT, 96 DNI, 99 consumidor final... */
  docType: number;
  docNumber: number;
  date: string;
  amounts: {
    total: number;
    /** ImpTotConc: not taxed. */
    untaxed: number;
    /** ImpNeto: taxed net. */
    net: number;
    /** ImpOpEx: exempt. */
    exempt: number;
    /** ImpIVA. */
    iva: number;
    /** ImpTrib. */
    otherTaxes: number;
  };
  /** MonId (`PES`, `DOL`...) and MonCotiz (1 for PES). */
  currency: string;
  exchangeRate: number;
  /** AlicIva entries: FEParamGetTiposIva id (5 = 21%), taxed base and VAT amount. */
  vat: { id: number; base: number; amount: number }[];
  /** Required for concepts 2 and 3 (error 10049), refused for 1. */
  service?: { from: string; to: string; paymentDue: string };
}

/** AFIP's verdict on one voucher of a FECAESolicitar. */
export interface CaeResult {
  /** A approved, R rejected (or left unevaluated after the lot's first rejection). */
  result: 'A' | 'R';
  /** 14 digits, present when approved. */
  cae?: string;
  /** YYYYMMDD. */
  caeDueDate?: string;
  cbteNro: number;
  /** Why the voucher was rejected, or remarks on an approved one (Observaciones/Obs). */
  observations: AfipMessage[];
}

/** FECAESolicitar's answer for a lot of consecutive vouchers, in the order they were sent. */
export interface CaeLotResult {
  /** FeCabResp.Resultado: A all approved, R none, P some (partial). */
  result: 'A' | 'R' | 'P';
  vouchers: CaeResult[];
  /** Request-level errors (Errors/Err): the vouchers they concern were not evaluated. */
  errors: AfipMessage[];
  /** Notices from AFIP (Events/Evt), e.g. announced maintenance. */
  events: AfipMessage[];
}

/** A voucher AFIP has on record (FECompConsultar). */
export interface AuthorizedInvoice {
  ptoVta: number;
  cbteTipo: number;
  cbteNro: number;
  /** CbteFch, YYYYMMDD. */
  date: string;
  docType: number;
  docNumber: number;
  total: number;
  currency: string | undefined;
  /** Resultado: `A` for an authorised voucher. */
  result: string;
  /** CodAutorizacion: the CAE (or CAEA). */
  authorizationCode: string;
  /** EmisionTipo: `CAE` or `CAEA`. */
  emissionType: string | undefined;
  /** FchVto: the CAE's due date, YYYYMMDD. */
  authorizationDueDate: string | undefined;
  /** FchProceso, as AFIP formats it. */
  processedAt: string | undefined;
  observations: AfipMessage[];
}

export interface SalesPoint {
  number: number;
  /** EmisionTipo, e.g. `CAE - Ley 25.300`... as AFIP words it. */
  emissionType: string | undefined;
  blocked: boolean;
  /** FchBaja, YYYYMMDD, when the point of sale was deactivated. */
  deactivatedOn: string | undefined;
}

export interface WsfeClientOptions {
  /** `https://servicios1.afip.gov.ar/wsfev1/service.asmx` (production), `https://wswhomo.afip.gov.ar/wsfev1/service.asmx` (homologation), or a simulator's `wsfeUrl`. */
  url: string;
  /** Upper bound for each request. */
  timeoutMs: number;
}

/**
 * WSFEv1. Transport failures, timeouts, HTTP errors and SOAP faults throw
 * `DependencyUnavailableError('afip-wsfe')`. AFIP `Errors` inside a valid answer:
 * - 500-502 (AFIP internal errors) throw `DependencyUnavailableError`: nothing was evaluated;
 * - 600 (token/sign refused: expired, or not WSAA's) throws `WsfeTokenRejectedError`, retryable:
 *   the job should `invalidate` its cached ticket and try again later with a fresh one;
 * - 601 (CUIT not represented by the certificate) throws `PermanentError`: a configuration fix;
 * - anything else is an answer about the request: data in `requestCae`, `null` for 602 in
 *   `getInvoice`, a `PermanentError` where the method has nothing to return.
 */
export interface WsfeClient {
  /** FEDummy: unauthenticated health of AFIP's application, database and authentication servers (`OK` each). */
  dummy(): Promise<{ appServer: string; dbServer: string; authServer: string }>;
  /** FECompUltimoAutorizado: the last authorised number, 0 when there is none. */
  lastAuthorized(auth: WsfeAuth, ptoVta: number, cbteTipo: number): Promise<number>;
  /**
   * FECAESolicitar for a lot of consecutive vouchers of one series (CantReg = `invoices.length`,
   * at most `maxVouchersPerRequest`). Rejections (`R`, `P`) are data, not errors.
   */
  requestCae(auth: WsfeAuth, invoices: readonly WsfeInvoice[]): Promise<CaeLotResult>;
  /** FECompTotXRequest: how many vouchers one FECAESolicitar may carry (RegXReq). */
  maxVouchersPerRequest(auth: WsfeAuth): Promise<number>;
  /** FECompConsultar: the voucher AFIP has on record, or null when it has none (error 602). */
  getInvoice(auth: WsfeAuth, ptoVta: number, cbteTipo: number, cbteNro: number): Promise<AuthorizedInvoice | null>;
  /** FEParamGetPtosVenta: the CUIT's web-service points of sale; [] when it has none (602). */
  salesPoints(auth: WsfeAuth): Promise<SalesPoint[]>;
}

/**
 * WSFE refused the ticket (error 600): expired, revoked or not issued for this service. WSFE
 * answered, so this is no outage and never opens its breaker; retryable with a new ticket.
 */
export class WsfeTokenRejectedError extends JobfleetError {
  readonly code = 'AFIP_WSFE_TOKEN_REJECTED';
  readonly retryable = true;
  readonly dependency = WSFE_DEPENDENCY;
}

/** Error codes common to every WSFE method (WSFEv1 developer manual, "errores comunes"). */
const AFIP_INTERNAL_ERRORS: ReadonlySet<number> = new Set([500, 501, 502]);
const TOKEN_REJECTED = 600;
const CUIT_NOT_REPRESENTED = 601;
const NO_RESULTS = 602;

// soap gives numbers as numbers or strings depending on the schema type, a single array item as an
// object, an empty element as '' or null: normalise each on the way in.
const number = z.coerce.number().refine(Number.isFinite);
const optionalText = z.preprocess((v) => (v === null || v === '' || v === 'NULL' ? undefined : v), z.string().optional());
const listOf = <T extends z.ZodType>(item: T) =>
  z.preprocess((v) => (v === undefined || v === null || v === '' ? [] : Array.isArray(v) ? (v as unknown[]) : [v]), z.array(item));
const messages = (key: 'Err' | 'Obs' | 'Evt') =>
  z
    .preprocess((v) => (typeof v === 'object' && v !== null ? v : {}), z.object({ [key]: listOf(z.object({ Code: number, Msg: z.string().default('') })) }))
    .transform((wrapper): AfipMessage[] => (wrapper[key] ?? []).map(({ Code, Msg }) => ({ code: Code, message: Msg })));
const errorsSchema = messages('Err');

const dummySchema = z.object({ AppServer: z.string(), DbServer: z.string(), AuthServer: z.string() });

const lastAuthorizedSchema = z.object({ CbteNro: number.optional(), Errors: errorsSchema });

const perRequestSchema = z.object({ RegXReq: number.optional(), Errors: errorsSchema });

const caeSchema = z.object({
  FeCabResp: z.object({ Resultado: optionalText }).optional(),
  FeDetResp: z
    .object({
      FECAEDetResponse: listOf(
        z.object({
          CbteDesde: number,
          Resultado: optionalText,
          CAE: optionalText,
          CAEFchVto: optionalText,
          Observaciones: messages('Obs'),
        }),
      ),
    })
    .optional(),
  Events: messages('Evt'),
  Errors: errorsSchema,
});

const invoiceSchema = z.object({
  ResultGet: z
    .object({
      PtoVta: number,
      CbteTipo: number,
      CbteDesde: number,
      CbteFch: z.string(),
      DocTipo: number,
      DocNro: number,
      ImpTotal: number,
      MonId: optionalText,
      Resultado: z.string(),
      CodAutorizacion: z.string(),
      EmisionTipo: optionalText,
      FchVto: optionalText,
      FchProceso: optionalText,
      Observaciones: messages('Obs'),
    })
    .optional(),
  Errors: errorsSchema,
});

const salesPointsSchema = z.object({
  ResultGet: z
    .object({ PtoVenta: listOf(z.object({ Nro: number, EmisionTipo: optionalText, Bloqueado: optionalText, FchBaja: optionalText })) })
    .optional(),
  Errors: errorsSchema,
});

type Operation = 'FEDummy' | 'FECompUltimoAutorizado' | 'FECAESolicitar' | 'FECompConsultar' | 'FECompTotXRequest' | 'FEParamGetPtosVenta';

export function createWsfeClient(options: WsfeClientOptions): WsfeClient {
  const service = createSoapService('wsfev1.wsdl', options.url, options.timeoutMs);

  /** Sends one request and parses `<operation>Result` with `schema`. */
  async function call<T extends z.ZodType>(operation: Operation, args: Record<string, unknown>, schema: T): Promise<z.output<T>> {
    let answer: unknown;
    try {
      answer = await service.call(operation, args);
    } catch (thrown) {
      throw toUnavailableError(WSFE_DEPENDENCY, operation, describeSoapFailure(thrown), thrown);
    }
    const result: unknown = typeof answer === 'object' && answer !== null ? (answer as Record<string, unknown>)[`${operation}Result`] : undefined;
    const parsed = schema.safeParse(result);
    if (!parsed.success) throw unexpectedAnswer(operation, parsed.error);
    return parsed.data;
  }

  return {
    async dummy() {
      const status = await call('FEDummy', {}, dummySchema);
      return { appServer: status.AppServer, dbServer: status.DbServer, authServer: status.AuthServer };
    },

    async lastAuthorized(auth, ptoVta, cbteTipo) {
      const answer = await call('FECompUltimoAutorizado', { Auth: authBlock(auth), PtoVta: ptoVta, CbteTipo: cbteTipo }, lastAuthorizedSchema);
      if (answer.Errors.length > 0) throw toAfipError('FECompUltimoAutorizado', answer.Errors);
      if (answer.CbteNro === undefined) throw unexpectedAnswer('FECompUltimoAutorizado', 'no CbteNro and no Errors');
      return answer.CbteNro;
    },

    async requestCae(auth, invoices) {
      const first = invoices[0];
      if (first === undefined) throw new Error('requestCae needs at least one voucher');
      const answer = await call('FECAESolicitar', { Auth: authBlock(auth), FeCAEReq: caeRequest(first, invoices) }, caeSchema);
      const details = answer.FeDetResp?.FECAEDetResponse ?? [];
      if (details.length === 0) {
        // No verdict on the vouchers: an internal or authentication error is not an answer about them.
        if (answer.Errors.some((e) => isServiceError(e.code))) throw toAfipError('FECAESolicitar', answer.Errors);
        if (answer.Errors.length === 0) throw unexpectedAnswer('FECAESolicitar', 'no FeDetResp and no Errors');
      } else if (details.length !== invoices.length || details.some((d, i) => d.CbteDesde !== invoices[i]?.cbteNro)) {
        const asked = invoices.map((i) => i.cbteNro).join(',');
        throw unexpectedAnswer('FECAESolicitar', `answered for vouchers ${details.map((d) => d.CbteDesde).join(',')}, asked for ${asked}`);
      }
      const vouchers = invoices.map((invoice, i): CaeResult => {
        const detail = details[i];
        const result = parseResult(detail?.Resultado ?? 'R');
        if (result === 'P') throw unexpectedAnswer('FECAESolicitar', `voucher ${invoice.cbteNro} answered P`);
        if (result === 'A' && detail?.CAE === undefined) throw unexpectedAnswer('FECAESolicitar', 'approved without a CAE');
        return {
          result,
          ...(detail?.CAE === undefined ? {} : { cae: detail.CAE }),
          ...(detail?.CAEFchVto === undefined ? {} : { caeDueDate: detail.CAEFchVto }),
          cbteNro: invoice.cbteNro,
          observations: detail?.Observaciones ?? [],
        };
      });
      const approved = vouchers.filter((v) => v.result === 'A').length;
      const result = approved === vouchers.length ? 'A' : approved === 0 ? 'R' : 'P';
      const stated = answer.FeCabResp?.Resultado;
      if (stated !== undefined && details.length > 0 && parseResult(stated) !== result) {
        throw unexpectedAnswer('FECAESolicitar', `header says ${stated}, vouchers say ${result}`);
      }
      return { result, vouchers, errors: answer.Errors, events: answer.Events };
    },

    async maxVouchersPerRequest(auth) {
      const answer = await call('FECompTotXRequest', { Auth: authBlock(auth) }, perRequestSchema);
      if (answer.Errors.length > 0) throw toAfipError('FECompTotXRequest', answer.Errors);
      if (answer.RegXReq === undefined || answer.RegXReq < 1) throw unexpectedAnswer('FECompTotXRequest', 'no RegXReq');
      return answer.RegXReq;
    },

    async getInvoice(auth, ptoVta, cbteTipo, cbteNro) {
      const answer = await call(
        'FECompConsultar',
        // ASMX reads a sequence in schema order: CbteTipo, CbteNro, PtoVta.
        { Auth: authBlock(auth), FeCompConsReq: { CbteTipo: cbteTipo, CbteNro: cbteNro, PtoVta: ptoVta } },
        invoiceSchema,
      );
      if (answer.Errors.some((e) => e.code === NO_RESULTS)) return null;
      if (answer.Errors.length > 0) throw toAfipError('FECompConsultar', answer.Errors);
      const found = answer.ResultGet;
      if (!found) throw unexpectedAnswer('FECompConsultar', 'no ResultGet and no Errors');
      return {
        ptoVta: found.PtoVta,
        cbteTipo: found.CbteTipo,
        cbteNro: found.CbteDesde,
        date: found.CbteFch,
        docType: found.DocTipo,
        docNumber: found.DocNro,
        total: found.ImpTotal,
        currency: found.MonId,
        result: found.Resultado,
        authorizationCode: found.CodAutorizacion,
        emissionType: found.EmisionTipo,
        authorizationDueDate: found.FchVto,
        processedAt: found.FchProceso,
        observations: found.Observaciones,
      };
    },

    async salesPoints(auth) {
      const answer = await call('FEParamGetPtosVenta', { Auth: authBlock(auth) }, salesPointsSchema);
      if (answer.Errors.some((e) => e.code === NO_RESULTS)) return [];
      if (answer.Errors.length > 0) throw toAfipError('FEParamGetPtosVenta', answer.Errors);
      return (answer.ResultGet?.PtoVenta ?? []).map((point) => ({
        number: point.Nro,
        emissionType: point.EmisionTipo,
        blocked: point.Bloqueado === 'S',
        deactivatedOn: point.FchBaja,
      }));
    },
  };
}

function authBlock(auth: WsfeAuth) {
  return { Token: auth.token, Sign: auth.sign, Cuit: auth.cuit };
}

/** FeCAEReq for a lot of one series, every sequence in the WSDL's order (ASMX ignores elements out of order). */
function caeRequest(first: WsfeInvoice, invoices: readonly WsfeInvoice[]) {
  return {
    FeCabReq: { CantReg: invoices.length, PtoVta: first.ptoVta, CbteTipo: first.cbteTipo },
    FeDetReq: { FECAEDetRequest: invoices.map(detailRequest) },
  };
}

function detailRequest(invoice: WsfeInvoice) {
  const { amounts, service, vat } = invoice;
  return {
    Concepto: invoice.concept,
    DocTipo: invoice.docType,
    DocNro: invoice.docNumber,
    CbteDesde: invoice.cbteNro,
    CbteHasta: invoice.cbteNro,
    CbteFch: invoice.date,
    ImpTotal: money(amounts.total),
    ImpTotConc: money(amounts.untaxed),
    ImpNeto: money(amounts.net),
    ImpOpEx: money(amounts.exempt),
    ImpTrib: money(amounts.otherTaxes),
    ImpIVA: money(amounts.iva),
    ...(service ? { FchServDesde: service.from, FchServHasta: service.to, FchVtoPago: service.paymentDue } : {}),
    MonId: invoice.currency,
    MonCotiz: invoice.exchangeRate,
    ...(vat.length > 0 ? { Iva: { AlicIva: vat.map((v) => ({ Id: v.id, BaseImp: money(v.base), Importe: money(v.amount) })) } } : {}),
  };
}

/** Two decimals, as AFIP validates amounts (error 10056); also drops float noise like 0.30000000000000004. */
function money(value: number): number {
  return Math.round(value * 100) / 100;
}

function parseResult(value: string): CaeLotResult['result'] {
  if (value === 'A' || value === 'R' || value === 'P') return value;
  throw unexpectedAnswer('FECAESolicitar', `unknown Resultado ${value}`);
}

/** Errors that say nothing about the request itself: AFIP's own failures and authentication. */
function isServiceError(code: number): boolean {
  return AFIP_INTERNAL_ERRORS.has(code) || code === TOKEN_REJECTED || code === CUIT_NOT_REPRESENTED;
}

/** The error for a method that cannot return because AFIP answered with Errors. */
function toAfipError(operation: Operation, errors: AfipMessage[]): Error {
  const first = errors.find((e) => isServiceError(e.code)) ?? errors[0];
  const text = `${operation}: AFIP error ${errors.map((e) => `${e.code} ${e.message}`).join('; ')}`;
  const details = { operation, afipErrors: errors };
  if (first === undefined) return unexpectedAnswer(operation, 'empty Errors');
  if (AFIP_INTERNAL_ERRORS.has(first.code)) return new DependencyUnavailableError(WSFE_DEPENDENCY, text, { details });
  if (first.code === TOKEN_REJECTED) return new WsfeTokenRejectedError(text, { details });
  if (first.code === CUIT_NOT_REPRESENTED) return new PermanentError('AFIP_WSFE_CUIT_NOT_REPRESENTED', text, { details });
  return new PermanentError(`AFIP_WSFE_ERROR_${first.code}`, text, { details });
}

function unexpectedAnswer(operation: Operation, cause: unknown): DependencyUnavailableError {
  // A 200 that is not the answer we asked for is a proxy or an outage page, not a verdict.
  return new DependencyUnavailableError(WSFE_DEPENDENCY, `${operation} answered something unexpected`, {
    cause,
    details: { operation, reason: 'unexpectedResponse' },
  });
}
