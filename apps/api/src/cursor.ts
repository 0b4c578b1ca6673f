import { z } from 'zod';

// Keyset pagination: a page ends with a cursor naming its last row's position, opaque to clients
// (base64url JSON to us), and the next page starts after it; stable while rows come and go.

/** Encoding and decoding of one list's cursors, whose positions `schema` describes. */
export function opaqueCursor<S extends z.ZodType>(schema: S) {
  const decode = (raw: string): z.output<S> | undefined => {
    try {
      const parsed = schema.safeParse(JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  };
  return {
    encode: (position: z.input<S>): string => Buffer.from(JSON.stringify(position)).toString('base64url'),
    decode,
    /** The `cursor` query parameter: absent, or a cursor of this list. */
    param: z
      .string()
      .max(512)
      .optional()
      .refine((raw) => raw === undefined || decode(raw) !== undefined, 'is not a cursor this API returned'),
  };
}

/** The query of a list: `limit` (1 to `max`, default 20) and `cursor`. */
export const pageQuery = (cursor: z.ZodType<string | undefined>, max = 100) =>
  z.strictObject({ limit: z.coerce.number().int().min(1).max(max).default(20), cursor });

/**
 * A page from `rows`, fetched with one more row than `limit` asks for, which tells whether another
 * page exists; the cursor of the next page, or null on the last.
 */
export function pageOf<Row>(rows: readonly Row[], limit: number, cursorOf: (row: Row) => string): { page: Row[]; nextCursor: string | null } {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { page, nextCursor: rows.length > limit && last !== undefined ? cursorOf(last) : null };
}
