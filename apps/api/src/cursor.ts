import { z } from 'zod';

/**
 * A keyset pagination cursor: the position of a page's last row, opaque to clients (base64url
 * JSON to us), and the query parameter that takes it back, refusing anything this API did not give.
 */
export function keysetCursor<S extends z.ZodType>(position: S) {
  function decode(raw: string): z.output<S> | undefined {
    try {
      const parsed = position.safeParse(JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }
  return {
    encode: (at: z.input<S>): string => Buffer.from(JSON.stringify(at)).toString('base64url'),
    decode,
    param: z
      .string()
      .max(512)
      .optional()
      .refine((raw) => raw === undefined || decode(raw) !== undefined, 'is not a cursor this API returned'),
  };
}
