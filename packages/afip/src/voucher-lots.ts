/**
 * Which voucher series may go several to a FECAESolicitar (a "lote"), shared by the client and the
 * simulator. WSFEv1 developer manual, FECAESolicitar: FeCabReq.CantReg is the number of
 * FECAEDetRequest, at most FECompTotXRequest's RegXReq; the manual's own example of a lot is 100
 * Facturas A, so classes A, B, C and M all batch. FCE MiPyMEs vouchers (RG 4367) go one per request.
 */
const FCE_MIPYMES_TYPES: ReadonlySet<number> = new Set([201, 202, 203, 206, 207, 208, 211, 212, 213]);

export function allowsLots(cbteTipo: number): boolean {
  return !FCE_MIPYMES_TYPES.has(cbteTipo);
}

/**
 * How many vouchers of type `cbteTipo` one request carries: AFIP's RegXReq, lowered by the
 * configured cap (`AFIP_BATCH_MAX_VOUCHERS`; 1 turns batching off), 1 where lots are not allowed.
 */
export function vouchersPerRequest(cbteTipo: number, regXReq: number, configuredMax: number | undefined): number {
  if (!allowsLots(cbteTipo)) return 1;
  return Math.max(1, Math.min(regXReq, configuredMax ?? regXReq));
}
