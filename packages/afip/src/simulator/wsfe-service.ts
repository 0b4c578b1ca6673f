import { randomInt } from 'node:crypto';
import { allowsLots } from '../voucher-lots';
import { childElement, childElements, childText, type XmlElement } from '../xml';
import type { WsaaService } from './wsaa-service';

/** A voucher the simulated WSFE authorised, with the request fields FECompConsultar echoes. */
export interface SimulatedVoucher {
  ptoVta: number;
  cbteTipo: number;
  cbteNro: number;
  cae: string;
  caeDueDate: string;
  total: number;
  /** YYYYMMDD. */
  date: string;
  processedAt: string;
  /** The FECAEDetRequest fields as received, in order (FECompConsultar answers them back). */
  request: [string, string][];
}

type Message = { Code: number; Msg: string };

/** Validation codes from the WSFEv1 developer manual's table of FECAESolicitar validations. */
const OBS = {
  numberOrDate: { Code: 10016, Msg: 'El numero o fecha del comprobante no se corresponde con el proximo a autorizar. Consultar metodo FECompUltimoAutorizado.' },
  ivaSum: { Code: 10023, Msg: 'La suma de los campos <Importe> en <AlicIva> debe ser igual al valor ingresado en ImpIVA.' },
  rate: { Code: 10039, Msg: 'El campo MonCotiz es obligatorio, e igual a 1 cuando se trate de MonId=PES' },
  total: { Code: 10048, Msg: "El campo 'Importe Total' ImpTotal, debe ser igual a la suma de ImpTotConc + ImpNeto + ImpOpEx + ImpTrib + ImpIVA." },
  serviceDates: { Code: 10049, Msg: 'Los campos FchServDesde, FchServHasta, FchVtoPago son obligatorios cuando el campo Concepto es igual a 2 o 3.' },
  baseSum: { Code: 10061, Msg: 'La suma de los campos <BaseImp> en <AlicIva> debe ser igual al valor ingresado en ImpNeto.' },
} satisfies Record<string, Message>;
/** Errors common to every method (manual: "errores comunes"). */
const BASE_ERR = {
  token: { Code: 600, Msg: 'ValidacionDeToken: No se corresponden token y firma. Usuario no autorizado a realizar esta operacion.' },
  cuit: { Code: 601, Msg: 'CUIT representada no incluida en Token' },
  noResults: { Code: 602, Msg: 'Sin Resultados: - Metodo ' },
} satisfies Record<string, Message>;
/**
 * Header (CantReg) refusals of a lot. The rules are the manual's (FECAESolicitar, FeCabReq.CantReg:
 * the number of FECAEDetRequest, at most what FECompTotXRequest answers; FCE MiPyMEs vouchers one per
 * request); the codes are the simulator's, in AFIP's Errors/Err shape (docs/afip-batching.md).
 */
const LOT_ERR = {
  lotCount: { Code: 10000, Msg: 'Simulador: CantReg debe ser mayor a 0 e igual a la cantidad de FECAEDetRequest.' },
  lotLimit: { Code: 10001, Msg: 'Simulador: CantReg supera la cantidad de comprobantes por request informada por FECompTotXRequest' },
  lotClass: { Code: 10002, Msg: 'Simulador: los comprobantes FCE MiPyMEs (201 a 213) se autorizan de a uno (CantReg 1).' },
} satisfies Record<string, Message>;
/** The simulator's own rejection, for tests that need a voucher refused inside a lot (setRejectedTotal). */
const REJECTED_ON_REQUEST: Message = { Code: 10999, Msg: 'Simulador: comprobante rechazado a pedido de la prueba (ImpTotal).' };

/** What FECompTotXRequest answers in production and homologation: RegXReq 250. */
const AFIP_MAX_VOUCHERS_PER_REQUEST = 250;

/** AFIP accepts amounts off by at most 0.01 (manual, "margen de error"). */
const TOLERANCE = 0.01;

export interface WsfeServiceOptions {
  wsaa: WsaaService;
  now: () => number;
  /** Awaited after FECAESolicitar committed an authorisation, before it answers. */
  afterAuthorize: () => Promise<void>;
  /** FECompTotXRequest's RegXReq, the CantReg limit. Default AFIP_MAX_VOUCHERS_PER_REQUEST. */
  maxVouchersPerRequest?: number;
}

/** WSFEv1's rules for the operations jobfleet uses; answers are the `<Operation>Result` content. */
export function createWsfeService(options: WsfeServiceOptions) {
  const { wsaa, now, afterAuthorize, maxVouchersPerRequest = AFIP_MAX_VOUCHERS_PER_REQUEST } = options;
  let rejectedTotal: number | null = null;
  const ERR = { ...BASE_ERR, ...LOT_ERR };
  const vouchers = new Map<string, SimulatedVoucher[]>();
  const series = (cuit: number, ptoVta: number, cbteTipo: number) => {
    const key = `${cuit}:${ptoVta}:${cbteTipo}`;
    let list = vouchers.get(key);
    if (!list) vouchers.set(key, (list = []));
    return list;
  };

  /** A CAE (14 digits) valid for ten days. */
  const newCae = () => ({
    cae: String(randomInt(1, 10)) + String(randomInt(0, 10 ** 13)).padStart(13, '0'),
    caeDueDate: yyyymmdd(now() + 10 * 24 * 3600_000),
  });

  /** The CUIT an Auth block may act for, or the Errors to answer instead. */
  function authenticate(operation: XmlElement): { cuit: number } | { Errors: { Err: Message[] } } {
    const auth = childElement(operation, 'Auth');
    const ticket = wsaa.ticketFor(childText(auth, 'Token') ?? '', childText(auth, 'Sign') ?? '');
    if (!ticket || ticket.service !== 'wsfe') return { Errors: { Err: [ERR.token] } };
    if (ticket.cuit !== Number(childText(auth, 'Cuit'))) return { Errors: { Err: [ERR.cuit] } };
    return { cuit: ticket.cuit };
  }

  /** The header rules of a lot (CantReg), or the request-level error that refuses it whole. */
  function checkLot(header: XmlElement | undefined, details: XmlElement[]): Message | undefined {
    const count = numberIn(header, 'CantReg');
    if (!(count >= 1) || count !== details.length) return ERR.lotCount;
    if (count > maxVouchersPerRequest) return { ...ERR.lotLimit, Msg: `${ERR.lotLimit.Msg} (${maxVouchersPerRequest})` };
    if (count > 1 && !allowsLots(numberIn(header, 'CbteTipo'))) return ERR.lotClass;
    return undefined;
  }

  async function requestCae(operation: XmlElement): Promise<unknown> {
    const auth = authenticate(operation);
    if ('Errors' in auth) return auth;
    const request = childElement(operation, 'FeCAEReq');
    const header = childElement(request, 'FeCabReq');
    const details = childElements(childElement(request, 'FeDetReq'), 'FECAEDetRequest');
    const ptoVta = numberIn(header, 'PtoVta');
    const cbteTipo = numberIn(header, 'CbteTipo');
    const refused = checkLot(header, details);
    if (refused) return { Errors: { Err: [refused] } };

    const list = series(auth.cuit, ptoVta, cbteTipo);
    const processedAt = timestamp(now());
    // A lot is evaluated in order and its first rejection stops it: the vouchers after it come back
    // R without observations, unevaluated, and no rejected voucher consumes its number.
    let stopped = false;
    const verdicts = details.map((detail) => {
      const observations = stopped ? [] : validate(detail, list.at(-1));
      if (stopped || observations.length > 0) {
        stopped = true;
        return { detail, result: 'R' as const, observations, cae: '', caeDueDate: '' };
      }
      const { cae, caeDueDate } = newCae();
      list.push({
        ptoVta,
        cbteTipo,
        cbteNro: numberIn(detail, 'CbteDesde'),
        cae,
        caeDueDate,
        total: numberIn(detail, 'ImpTotal'),
        date: childText(detail, 'CbteFch') || yyyymmdd(now()),
        processedAt,
        request: detail.children.filter((field) => field.children.length === 0).map((field) => [field.name, field.text.trim()]),
      });
      return { detail, result: 'A' as const, observations, cae, caeDueDate };
    });
    const approved = verdicts.filter((v) => v.result === 'A').length;
    // Committed: whatever happens to the answer now, AFIP has the vouchers.
    if (approved > 0) await afterAuthorize();
    const result = approved === details.length ? 'A' : approved === 0 ? 'R' : 'P';
    return {
      FeCabResp: { Cuit: auth.cuit, PtoVta: ptoVta, CbteTipo: cbteTipo, FchProceso: processedAt, CantReg: details.length, Resultado: result, Reproceso: 'N' },
      FeDetResp: {
        FECAEDetResponse: verdicts.map(({ detail, result: verdict, observations, cae, caeDueDate }) => ({
          Concepto: childText(detail, 'Concepto'),
          DocTipo: childText(detail, 'DocTipo'),
          DocNro: childText(detail, 'DocNro'),
          CbteDesde: childText(detail, 'CbteDesde'),
          CbteHasta: childText(detail, 'CbteHasta'),
          CbteFch: childText(detail, 'CbteFch'),
          Resultado: verdict,
          Observaciones: observations.length > 0 ? { Obs: observations } : undefined,
          CAE: cae,
          CAEFchVto: caeDueDate,
        })),
      },
    };
  }

  /** The manual's checks that matter for numbering and amounts; returns the Obs of a rejection. */
  function validate(detail: XmlElement, last: SimulatedVoucher | undefined): Message[] {
    const observations: Message[] = [];
    const from = numberIn(detail, 'CbteDesde');
    const date = childText(detail, 'CbteFch') || yyyymmdd(now());
    const concept = numberIn(detail, 'Concepto');
    const window = (concept === 1 ? 5 : 10) * 24 * 3600_000;
    const dateOutOfRange = date < yyyymmdd(now() - window) || date > yyyymmdd(now() + window) || (last !== undefined && date < last.date);
    if (from !== numberIn(detail, 'CbteHasta') || from !== (last?.cbteNro ?? 0) + 1 || dateOutOfRange) {
      observations.push(OBS.numberOrDate);
    }
    const amount = (name: string) => numberIn(detail, name);
    const parts = amount('ImpTotConc') + amount('ImpNeto') + amount('ImpOpEx') + amount('ImpTrib') + amount('ImpIVA');
    if (!(Math.abs(amount('ImpTotal') - parts) <= TOLERANCE)) observations.push(OBS.total);
    const rates = childElements(childElement(detail, 'Iva'), 'AlicIva');
    if (rates.length > 0) {
      const sum = (name: string) => rates.reduce((total, rate) => total + numberIn(rate, name), 0);
      if (!(Math.abs(sum('Importe') - amount('ImpIVA')) <= TOLERANCE * rates.length)) observations.push(OBS.ivaSum);
      if (!(Math.abs(sum('BaseImp') - amount('ImpNeto')) <= TOLERANCE * rates.length)) observations.push(OBS.baseSum);
    }
    if (concept !== 1 && ['FchServDesde', 'FchServHasta', 'FchVtoPago'].some((name) => !childText(detail, name))) {
      observations.push(OBS.serviceDates);
    }
    if (childText(detail, 'MonId') === 'PES' && amount('MonCotiz') !== 1) observations.push(OBS.rate);
    if (rejectedTotal !== null && amount('ImpTotal') === rejectedTotal) observations.push(REJECTED_ON_REQUEST);
    return observations;
  }

  function lastAuthorized(operation: XmlElement): unknown {
    const ptoVta = numberIn(operation, 'PtoVta');
    const cbteTipo = numberIn(operation, 'CbteTipo');
    const auth = authenticate(operation);
    if ('Errors' in auth) return { PtoVta: 0, CbteTipo: 0, CbteNro: 0, ...auth };
    return { PtoVta: ptoVta, CbteTipo: cbteTipo, CbteNro: series(auth.cuit, ptoVta, cbteTipo).at(-1)?.cbteNro ?? 0 };
  }

  function getInvoice(operation: XmlElement): unknown {
    const auth = authenticate(operation);
    if ('Errors' in auth) return auth;
    const query = childElement(operation, 'FeCompConsReq');
    const ptoVta = numberIn(query, 'PtoVta');
    const cbteTipo = numberIn(query, 'CbteTipo');
    const cbteNro = numberIn(query, 'CbteNro');
    const voucher = series(auth.cuit, ptoVta, cbteTipo).find((v) => v.cbteNro === cbteNro);
    if (!voucher) return { Errors: { Err: [{ ...ERR.noResults, Msg: `${ERR.noResults.Msg}FECompConsultar` }] } };
    return {
      ResultGet: {
        ...Object.fromEntries(voucher.request),
        ...(voucher.request.some(([name]) => name === 'CbteFch') ? {} : { CbteFch: voucher.date }),
        Resultado: 'A',
        CodAutorizacion: voucher.cae,
        EmisionTipo: 'CAE',
        FchVto: voucher.caeDueDate,
        FchProceso: voucher.processedAt,
        PtoVta: ptoVta,
        CbteTipo: cbteTipo,
      },
    };
  }

  function salesPoints(operation: XmlElement): unknown {
    const auth = authenticate(operation);
    if ('Errors' in auth) return auth;
    // Points of sale the CUIT has used: enough for a simulator that needs no registration step.
    const numbers = [...vouchers.entries()]
      .filter(([key, list]) => key.startsWith(`${auth.cuit}:`) && list.length > 0)
      .map(([, list]) => list[0]?.ptoVta ?? 0);
    const distinct = [...new Set(numbers)].sort((a, b) => a - b);
    if (distinct.length === 0) return { Errors: { Err: [{ ...ERR.noResults, Msg: `${ERR.noResults.Msg}FEParamGetPtosVenta` }] } };
    return { ResultGet: { PtoVenta: distinct.map((Nro) => ({ Nro, EmisionTipo: 'CAE', Bloqueado: 'N', FchBaja: 'NULL' })) } };
  }

  return {
    /** Answers one operation; undefined for an operation the simulator does not serve. */
    async handle(operation: XmlElement): Promise<unknown> {
      switch (operation.name) {
        case 'FEDummy':
          return { AppServer: 'OK', DbServer: 'OK', AuthServer: 'OK' };
        case 'FECompUltimoAutorizado':
          return lastAuthorized(operation);
        case 'FECAESolicitar':
          return requestCae(operation);
        case 'FECompConsultar':
          return getInvoice(operation);
        case 'FECompTotXRequest': {
          const auth = authenticate(operation);
          return 'Errors' in auth ? { RegXReq: 0, ...auth } : { RegXReq: maxVouchersPerRequest };
        }
        case 'FEParamGetPtosVenta':
          return salesPoints(operation);
        default:
          return undefined;
      }
    },
    authorized(cuit: number, ptoVta: number, cbteTipo: number): SimulatedVoucher[] {
      return (vouchers.get(`${cuit}:${ptoVta}:${cbteTipo}`) ?? []).map((v) => ({ ...v, request: [...v.request] }));
    },
    /** A voucher authorised outside the fleet (another system with the same CUIT, AFIP's web form): the next number. */
    issueElsewhere(cuit: number, ptoVta: number, cbteTipo: number, total: number): number {
      const list = series(cuit, ptoVta, cbteTipo);
      const cbteNro = (list.at(-1)?.cbteNro ?? 0) + 1;
      const date = yyyymmdd(now());
      // A final consumer's voucher (DocTipo 99), as FECompConsultar would echo it.
      const fields = { Concepto: 1, DocTipo: 99, DocNro: 0, CbteDesde: cbteNro, CbteHasta: cbteNro, CbteFch: date, ImpTotal: total, MonId: 'PES', MonCotiz: 1 };
      const request = Object.entries(fields).map(([name, value]): [string, string] => [name, String(value)]);
      list.push({ ptoVta, cbteTipo, cbteNro, ...newCae(), total, date, processedAt: timestamp(now()), request });
      return cbteNro;
    },
    /** Vouchers with this ImpTotal are rejected (Obs 10999) until `null`: a partial lot on demand. */
    setRejectedTotal(total: number | null): void {
      rejectedTotal = total;
    },
    reset(): void {
      vouchers.clear();
      rejectedTotal = null;
    },
  };
}

function numberIn(parent: XmlElement | undefined, name: string): number {
  const text = childText(parent, name);
  return text === undefined || text === '' ? Number.NaN : Number(text);
}

/** YYYYMMDD in Argentina (UTC-3), the calendar AFIP dates vouchers in. */
function yyyymmdd(ms: number): string {
  return new Date(ms - 3 * 3600_000).toISOString().slice(0, 10).replaceAll('-', '');
}

/** FchProceso: YYYYMMDDhhmmss, Argentina time. */
function timestamp(ms: number): string {
  return new Date(ms - 3 * 3600_000).toISOString().slice(0, 19).replace(/\D/g, '');
}
