import { canonicalJson, sha256Hex } from './canonical-json';

describe('canonicalJson', () => {
  it('gives the same text for the same value whatever the key order', () => {
    const a = { b: 1, a: { d: [{ y: 1, x: 2 }], c: null } };
    const b = { a: { c: null, d: [{ x: 2, y: 1 }] }, b: 1 };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(canonicalJson(a)).toBe('{"a":{"c":null,"d":[{"x":2,"y":1}]},"b":1}');
  });

  it('keeps array order and drops undefined fields like JSON.stringify', () => {
    expect(canonicalJson({ z: [3, 1, 2], u: undefined })).toBe('{"z":[3,1,2]}');
  });

  it('sorts integer-like keys as strings, as RFC 8785 does', () => {
    expect(canonicalJson({ b: 1, '10': 2, '9': 3 })).toBe('{"10":2,"9":3,"b":1}');
  });

  it('refuses a string with a lone surrogate, which has no canonical form', () => {
    expect(() => canonicalJson({ summary: 'Mesa \ud800' })).toThrow(/surrogate/i);
  });

  it('hashes an AFIP request as the hand-written canonicalJson did, so stored request hashes still match', () => {
    const body = {
      invoiceId: 'inv-2026-0001',
      cuit: 20123456786,
      ptoVta: 1,
      cbteTipo: 6,
      concept: 1,
      docType: 96,
      docNumber: 30111222,
      date: '2026-03-14',
      amounts: { total: 121, untaxed: 0, net: 100, exempt: 0, vat: 21, otherTaxes: 0 },
      vat: [{ rateId: 5, base: 100, amount: 21 }],
      currency: 'PES',
      exchangeRate: 1,
    };
    // Computed with the implementation canonicalize replaced.
    expect(sha256Hex(canonicalJson(body))).toBe('135147af6e6cf9424ff449c6a58f618a5ae52547b3047fa2ae286ebeeeb3b840');
  });
});
