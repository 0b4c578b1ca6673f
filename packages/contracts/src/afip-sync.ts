import { z } from 'zod';

/** Voucher types we issue (AFIP table FEParamGetTiposCbte): invoices, debit and credit notes, classes A, B, C, M. */
export const AFIP_VOUCHER_TYPES = [1, 2, 3, 6, 7, 8, 11, 12, 13, 51, 52, 53] as const;
/** Class C vouchers (issued by monotributistas) carry no VAT. */
const CLASS_C_VOUCHER_TYPES: readonly number[] = [11, 12, 13];
/** AFIP VAT rate ids (FEParamGetTiposIva) and their rates. */
export const AFIP_VAT_RATES: Readonly<Record<number, number>> = { 3: 0, 4: 0.105, 5: 0.21, 6: 0.27, 8: 0.05, 9: 0.025 };
/** Document types accepted for the buyer (FEParamGetTiposDoc): CUIT, CUIL, CDI, DNI, consumidor final. */
export const AFIP_DOC_TYPES = [80, 86, 87, 96, 99] as const;

const cents = (value: number) => Math.round(value * 100);
const money = z
  .number()
  .min(0, 'must not be negative')
  .max(1e13)
  .refine((v) => Math.abs(cents(v) - v * 100) < 1e-6, 'at most 2 decimals');
const isoDate = z.iso.date();

/** A CUIT is 11 digits whose last is a mod-11 check digit. */
export function isValidCuit(cuit: number): boolean {
  const digits = String(cuit).split('').map(Number);
  if (digits.length !== 11) return false;
  const weights = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
  const sum = weights.reduce((acc, w, i) => acc + w * (digits[i] ?? 0), 0);
  const check = (11 - (sum % 11)) % 11;
  return check !== 10 && check === digits[10];
}

const cuitSchema = z.number().int().refine(isValidCuit, 'not a valid CUIT (11 digits with check digit)');

/** What a producer POSTs to /v1/jobs/afip-sync: one voucher to authorise (obtain its CAE). */
export const afipSyncRequestSchema = z
  .strictObject({
    // The producer's id of this invoice: the sync_status entity and the default idempotency key.
    invoiceId: z.string().min(1).max(200).regex(/^[\w.:-]+$/, 'letters, digits, _ . : - only'),
    cuit: cuitSchema,
    ptoVta: z.number().int().min(1).max(99_998),
    cbteTipo: z
      .number()
      .int()
      .refine((v) => (AFIP_VOUCHER_TYPES as readonly number[]).includes(v), `unknown voucher type; known: ${AFIP_VOUCHER_TYPES.join(', ')}`),
    // 1 products, 2 services, 3 products and services.
    concept: z.union([z.literal(1), z.literal(2), z.literal(3)]),
    docType: z
      .number()
      .int()
      .refine((v) => (AFIP_DOC_TYPES as readonly number[]).includes(v), `unknown document type; known: ${AFIP_DOC_TYPES.join(', ')}`),
    docNumber: z.number().int().min(0).max(99_999_999_999),
    date: isoDate,
    serviceFrom: isoDate.optional(),
    serviceTo: isoDate.optional(),
    paymentDue: isoDate.optional(),
    amounts: z.strictObject({
      total: money,
      untaxed: money.default(0),
      net: money,
      exempt: money.default(0),
      vat: money,
      otherTaxes: money.default(0),
    }),
    vat: z
      .array(
        z.strictObject({
          rateId: z
            .number()
            .int()
            .refine((v) => v in AFIP_VAT_RATES, `unknown VAT rate id; known: ${Object.keys(AFIP_VAT_RATES).join(', ')}`),
          base: money,
          amount: money,
        }),
      )
      .max(10)
      .default([]),
    currency: z.string().regex(/^[A-Z0-9]{3}$/, 'AFIP currency code, e.g. PES, DOL').default('PES'),
    exchangeRate: z.number().positive().default(1),
  })
  .superRefine((req, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const a = req.amounts;
    const expectedTotal = cents(a.untaxed) + cents(a.net) + cents(a.exempt) + cents(a.vat) + cents(a.otherTaxes);
    if (cents(a.total) !== expectedTotal) {
      issue(['amounts', 'total'], `must equal untaxed + net + exempt + vat + otherTaxes (${(expectedTotal / 100).toFixed(2)})`);
    }
    if (CLASS_C_VOUCHER_TYPES.includes(req.cbteTipo)) {
      if (cents(a.vat) !== 0 || req.vat.length > 0) issue(['vat'], 'class C vouchers carry no VAT');
    } else if (cents(a.net) > 0 && req.vat.length === 0) {
      issue(['vat'], 'a VAT breakdown is required when there is a taxed net amount');
    }
    if (req.vat.length > 0) {
      const vatSum = req.vat.reduce((sum, v) => sum + cents(v.amount), 0);
      if (vatSum !== cents(a.vat)) issue(['amounts', 'vat'], `must equal the sum of vat[].amount (${(vatSum / 100).toFixed(2)})`);
      const baseSum = req.vat.reduce((sum, v) => sum + cents(v.base), 0);
      if (baseSum !== cents(a.net)) issue(['amounts', 'net'], `must equal the sum of vat[].base (${(baseSum / 100).toFixed(2)})`);
      req.vat.forEach((v, i) => {
        const expected = Math.round(cents(v.base) * (AFIP_VAT_RATES[v.rateId] ?? 0));
        if (Math.abs(cents(v.amount) - expected) > 1) issue(['vat', i, 'amount'], `must be base x rate (${(expected / 100).toFixed(2)})`);
      });
    }
    if (req.concept !== 1) {
      for (const field of ['serviceFrom', 'serviceTo', 'paymentDue'] as const) {
        if (req[field] === undefined) issue([field], 'required for services (concept 2 or 3)');
      }
      if (req.serviceFrom && req.serviceTo && req.serviceTo < req.serviceFrom) issue(['serviceTo'], 'must not be before serviceFrom');
    }
    if (req.currency === 'PES' && req.exchangeRate !== 1) issue(['exchangeRate'], 'must be 1 for PES');
  });
export type AfipSyncRequest = z.output<typeof afipSyncRequestSchema>;

export interface AfipSyncResult {
  cuit: number;
  ptoVta: number;
  cbteTipo: number;
  cbteNro: number;
  cae: string;
  caeDueDate: string;
  /** true when an earlier run had already obtained the CAE (crash recovery): no new request was made. */
  recovered: boolean;
  observations: { code: number; message: string }[];
}
