import { hash } from 'node:crypto';
import canonicalize from 'canonicalize';

/**
 * RFC 8785 (JCS) text: object keys sorted at every depth, numbers and strings as ECMAScript writes
 * them, so equal values give equal text whatever order the keys arrived (or came back from jsonb)
 * in. Used for request hashes and for idempotent responses, which must replay byte for byte.
 * Throws on what RFC 8785 cannot write: a lone surrogate, NaN or Infinity, a cycle.
 */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  // canonicalize answers undefined for what JSON has no text for at all (undefined, a function).
  if (text === undefined) throw new TypeError(`canonicalJson: ${typeof value} is not JSON`);
  return text;
}

export function sha256Hex(text: string): string {
  // The one-shot hash (strings as UTF-8): a fraction of createHash's cost per call, the same digest.
  return hash('sha256', text, 'hex');
}
