import canonicalize from 'canonicalize';
import { canonicalJson } from './lock-audit';

// Before canonicalJson is replaced by `canonicalize` (RFC 8785): do both give the same bytes for
// every row the lock audit hashes? Rows hold text columns, integer columns or null, an ISO time and
// `details`, which is plain JSON (normalised through JSON on append, parsed from jsonb on verify).

/** Deterministic PRNG so a failure can be replayed. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ (t + Math.imul(t ^ (t >>> 14), 61 | t));
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Characters that stress escaping and key order: controls, quotes, backslash, U+2028, non-ASCII,
// astral (surrogate pairs sort before U+E000..U+FFFF by UTF-16 but after them by code point).
const ALPHABET = ['a', 'B', 'z', '0', '9', ' ', '"', '\\', '/', '\n', '\t', '\u0000', '\u001f', '\u007f', '\u2028', 'é', 'ñ', '中', '\uffff', '\ue000', '😀', '𝄞'];
const NUMBERS = [0, -0, 1, -1, 7, 42, 1000, 2 ** 31, 2 ** 53 - 1, -(2 ** 53 - 1), 0.1, 1.5, -2.25, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 123456789.125];

function randomString(next: () => number): string {
  const length = Math.floor(next() * 6);
  let text = '';
  for (let i = 0; i < length; i++) text += ALPHABET[Math.floor(next() * ALPHABET.length)];
  // Integer-like keys ("10", "9") are where JS property order and sorted order disagree.
  return next() < 0.15 ? String(Math.floor(next() * 20)) : text;
}

function randomJson(next: () => number, depth: number): unknown {
  const pick = next();
  if (depth <= 0 || pick < 0.5) {
    const leaf = next();
    if (leaf < 0.2) return null;
    if (leaf < 0.3) return next() < 0.5;
    if (leaf < 0.6) return NUMBERS[Math.floor(next() * NUMBERS.length)];
    return randomString(next);
  }
  if (pick < 0.7) return Array.from({ length: Math.floor(next() * 4) }, () => randomJson(next, depth - 1));
  const object: Record<string, unknown> = {};
  for (let i = Math.floor(next() * 5); i > 0; i--) object[randomString(next)] = randomJson(next, depth - 1);
  return object;
}

function randomRow(next: () => number, n: number) {
  const nullable = (value: unknown) => (next() < 0.3 ? null : value);
  return {
    chain: `afip:${randomString(next)}`,
    seq: n + 1,
    lock_key: `jf:lock:${randomString(next)}`,
    event: ['acquired', 'conflict', 'extended', 'released', 'expired', 'lost'][n % 6],
    owner: `worker-${randomString(next)}`,
    tenant_id: nullable(randomString(next)),
    job_id: nullable(`job-${n}`),
    fencing_token: nullable(Math.floor(next() * 2 ** 53)),
    // As jsonb hands it back (and as append normalises it): plain JSON.
    details: JSON.parse(JSON.stringify(randomJson(next, 4) ?? {})) as unknown,
    at: new Date(Date.UTC(2026, 0, 1) + Math.floor(next() * 1e12)).toISOString(),
    prev_hash: n === 0 ? '0'.repeat(64) : 'ab'.repeat(32),
  };
}

describe('canonicalJson (lock audit) against canonicalize (RFC 8785)', () => {
  it('gives identical bytes for 20 000 random audit rows', () => {
    const next = mulberry32(8785);
    for (let n = 0; n < 20_000; n++) {
      const row = randomRow(next, n);
      expect(canonicalize(row)).toBe(canonicalJson(row));
    }
  });

  it('gives identical bytes for the rows the repository tests write', () => {
    const row = {
      chain: 'afip:chain-1',
      seq: 3,
      lock_key: 'jf:afip:chain-1',
      event: 'released',
      owner: 'worker-1',
      tenant_id: 'acme',
      job_id: 'job-3',
      fencing_token: 3,
      details: { n: 3, ttlMs: 1000, nested: { b: [1, { z: null, y: 'x' }], a: {} } },
      at: '2026-01-01T00:00:00.003Z',
      prev_hash: '0'.repeat(64),
    };
    expect(canonicalize(row)).toBe(canonicalJson(row));
  });

  it('orders keys by UTF-16 code unit, as both specify', () => {
    const keys = { '\uffff': 1, '😀': 2, '10': 3, '9': 4, 'é': 5, a: 6, '': 7 };
    expect(canonicalize(keys)).toBe(canonicalJson(keys));
    expect(canonicalJson(keys)).toBe('{"":7,"10":3,"9":4,"a":6,"é":5,"😀":2,"\uffff":1}');
  });
});
