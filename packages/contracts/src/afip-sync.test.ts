import { invoiceRequest } from '../../../tests/support/fixtures';
import { afipSyncRequestSchema, isValidCuit } from './afip-sync';

const pathsOf = (body: unknown) => {
  const parsed = afipSyncRequestSchema.safeParse(body);
  return parsed.success ? [] : parsed.error.issues.map((i) => i.path.join('.'));
};

describe('afip-sync request', () => {
  it('accepts a consistent class A invoice and fills defaults', () => {
    const parsed = afipSyncRequestSchema.parse(invoiceRequest('inv-1'));
    expect(parsed).toMatchObject({ currency: 'PES', exchangeRate: 1, amounts: { untaxed: 0, exempt: 0, otherTaxes: 0 } });
  });

  it('checks CUIT check digits', () => {
    expect(isValidCuit(30712345671)).toBe(true);
    expect(isValidCuit(30712345672)).toBe(false);
    expect(isValidCuit(123)).toBe(false);
  });

  it.each([
    ['a total that is not the sum of its parts', invoiceRequest('i', { amounts: { total: 1200, net: 1000, vat: 210 } }), 'amounts.total'],
    ['VAT lines that do not add up to the VAT amount', invoiceRequest('i', { vat: [{ rateId: 5, base: 1000, amount: 200 }] }), 'amounts.vat'],
    ['a VAT line whose amount is not base x rate', invoiceRequest('i', { amounts: { total: 1105, net: 1000, vat: 105 }, vat: [{ rateId: 5, base: 1000, amount: 105 }] }), 'vat.0.amount'],
    ['an unknown voucher type', invoiceRequest('i', { cbteTipo: 99 }), 'cbteTipo'],
    ['a negative amount', invoiceRequest('i', { amounts: { total: 1210, net: 1000, vat: 210, exempt: -5 } }), 'amounts.exempt'],
    ['an unknown VAT rate id', invoiceRequest('i', { vat: [{ rateId: 7, base: 1000, amount: 210 }] }), 'vat.0.rateId'],
    ['VAT on a class C voucher', invoiceRequest('i', { cbteTipo: 11 }), 'vat'],
    ['services without service dates', invoiceRequest('i', { concept: 2 }), 'serviceFrom'],
    ['a bad CUIT', invoiceRequest('i', { cuit: 30712345672 }), 'cuit'],
    ['an unknown field', invoiceRequest('i', { discount: 5 }), ''],
  ])('rejects %s and names the field', (_label, body, path) => {
    expect(pathsOf(body)).toContain(path);
  });
});
