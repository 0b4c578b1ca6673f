import { randomInt } from 'node:crypto';
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
const ERR = {
  token: { Code: 600, Msg: 'ValidacionDeToken: No se corresponden token y firma. Usuario no autorizado a realizar esta operacion.' },
  cuit: { Code: 601, Msg: 'CUIT representada no incluida en Token' },
  noResults: { Code: 602, Msg: 'Sin Resultados: - Metodo ' },
  // Not an AFIP code: the simulator authorises one voucher per request, like jobfleet sends them.
  batch: { Code: 10000, Msg: 'Simulador: CantReg debe ser 1 e igual a la cantidad de FECAEDetRequest.' },
} satisfies Record<string, Message>;

/** AFIP accepts amounts off by at most 0.01 (manual, "margen de error"). */
const TOLERANCE = 0.01;

export interface WsfeServiceOptions {
  wsaa: WsaaService;
  now: () => number;
  /** Awaited after FECAESolicitar committed an authorisation, before it answers. */
  afterAuthorize: () => Promise<void>;
}

/** WSFEv1's rules for the operations jobfleet uses; answers are the `<Operation>Result` content. */
export function createWsfeService(options: WsfeServiceOptions) {
  const { wsaa, now, afterAuthorize } = options;
  const vouchers = new Map<string, SimulatedVoucher[]>();
  const series = (cuit: number, ptoVta: number, cbteTipo: number) => {
    const key = `${cuit}:${ptoVta}:${cbteTipo}`;
    let list = vouchers.get(key);
    if (!list) vouchers.set(key, (list = []));
    return list;
  };

  /** The CUIT an Auth block may act for, or the Errors to answer instead. */
  function authenticate(operation: XmlElement): { cuit: number } | { Errors: { Err: Message[] } } {
    const auth = childElement(operation, 'Auth');
    const ticket = wsaa.ticketFor(childText(auth, 'Token') ?? '', childText(auth, 'Sign') ?? '');
    if (!ticket || ticket.service !== 'wsfe') return { Errors: { Err: [ERR.token] } };
    if (ticket.cuit !== Number(childText(auth, 'Cuit'))) return { Errors: { Err: [ERR.cuit] } };
    return { cuit: ticket.cuit };
  }

  async function requestCae(operation: XmlElement): Promise<unknown> {
    const auth = authenticate(operation);
    if ('Errors' in auth) return auth;
    const request = childElement(operation, 'FeCAEReq');
    const header = childElement(request, 'FeCabReq');
    const details = childElements(childElement(request, 'FeDetReq'), 'FECAEDetRequest');
    const ptoVta = numberIn(header, 'PtoVta');
    const cbteTipo = numberIn(header, 'CbteTipo');
    const detail = details[0];
    if (numberIn(header, 'CantReg') !== 1 || details.length !== 1 || !detail) return { Errors: { Err: [ERR.batch] } };

    const list = series(auth.cuit, ptoVta, cbteTipo);
    const observations = validate(detail, list.at(-1));
    const cbteNro = numberIn(detail, 'CbteDesde');
    const processedAt = timestamp(now());
    let cae = '';
    let caeDueDate = '';
    if (observations.length === 0) {
      cae = String(randomInt(1, 10)) + String(randomInt(0, 10 ** 13)).padStart(13, '0');
      caeDueDate = yyyymmdd(now() + 10 * 24 * 3600_000);
      list.push({
        ptoVta,
        cbteTipo,
        cbteNro,
        cae,
        caeDueDate,
        total: numberIn(detail, 'ImpTotal'),
        date: childText(detail, 'CbteFch') || yyyymmdd(now()),
        processedAt,
        request: detail.children.filter((field) => field.children.length === 0).map((field) => [field.name, field.text.trim()]),
      });
      // Committed: whatever happens to the answer now, AFIP has the voucher.
      await afterAuthorize();
    }
    const result = observations.length === 0 ? 'A' : 'R';
    return {
      FeCabResp: { Cuit: auth.cuit, PtoVta: ptoVta, CbteTipo: cbteTipo, FchProceso: processedAt, CantReg: 1, Resultado: result, Reproceso: 'N' },
      FeDetResp: {
        FECAEDetResponse: {
          Concepto: childText(detail, 'Concepto'),
          DocTipo: childText(detail, 'DocTipo'),
          DocNro: childText(detail, 'DocNro'),
          CbteDesde: cbteNro,
          CbteHasta: childText(detail, 'CbteHasta'),
          CbteFch: childText(detail, 'CbteFch'),
          Resultado: result,
          Observaciones: observations.length > 0 ? { Obs: observations } : undefined,
          CAE: cae,
          CAEFchVto: caeDueDate,
        },
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
        case 'FEParamGetPtosVenta':
          return salesPoints(operation);
        default:
          return undefined;
      }
    },
    authorized(cuit: number, ptoVta: number, cbteTipo: number): SimulatedVoucher[] {
      return (vouchers.get(`${cuit}:${ptoVta}:${cbteTipo}`) ?? []).map((v) => ({ ...v, request: [...v.request] }));
    },
    reset(): void {
      vouchers.clear();
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
