import { createHash } from 'node:crypto';

/**
 * JSON with object keys sorted at every depth, so equal values give equal text whatever order the
 * keys arrived (or came back from jsonb) in. Used for request hashes and for idempotent responses,
 * which must replay byte for byte.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const record = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(record).sort().map((k) => [k, record[k]]));
  });
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
