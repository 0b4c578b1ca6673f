import { z } from 'zod';

// C0 controls (NUL among them) and DEL: Postgres text refuses NUL outright, and none belongs in an id.
function hasControlCharacter(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}
// A high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Up to `max` characters, none of them a control character or a lone surrogate. */
export function plainText(max: number) {
  return z
    .string()
    .max(max)
    .refine((value) => !hasControlCharacter(value), 'must not contain control characters')
    .refine((value) => !LONE_SURROGATE.test(value), 'must not contain lone surrogates');
}

/**
 * A path or query value that may reach Postgres: 1 to `max` characters, no control characters,
 * no lone surrogates (which UTF-8, and so Postgres, cannot store as written).
 */
export function storableText(max: number) {
  return plainText(max).min(1);
}

// What Postgres timestamptz and every client agree on; year 0000 and the far future are refused.
const EARLIEST = Date.UTC(1970, 0, 1);
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** An RFC 3339 instant within 1970–9999. */
export const boundedInstant = z.iso
  .datetime({ offset: true })
  .refine((value) => {
    const at = Date.parse(value);
    return at >= EARLIEST && at <= LATEST;
  }, 'must be between 1970 and 9999');

/**
 * Fastify's router refuses longer path parameters with a 414 before our validation: sized for the
 * longest valid id percent-encoded (a job id is <tenant>-<64 hex>; entity ids are up to 200
 * characters, each up to 9 bytes encoded).
 */
export const MAX_PARAM_LENGTH = 2048;
