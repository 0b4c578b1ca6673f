import { canonicalJson } from './canonical-json';

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
});
