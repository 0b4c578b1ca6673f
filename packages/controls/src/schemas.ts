import { switchScopes, type FeatureFlagDefinition, type FleetSwitchChange } from '@jobfleet/db';
import { z } from 'zod';

// Tenant ids and kind names are short identifiers everywhere else (tenants.id, QUEUE names).
const subject = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, 'letters, digits, ".", "_", ":" or "-", at most 64');
export const flagKeySchema = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,99}$/, 'lowercase letters, digits, ".", "_" or "-", at most 100');
const variantName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_" or "-", at most 64');
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// Postgres text and jsonb refuse NUL and lone surrogates: refused here as bad input, not failed there.
const printable = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[^\p{Cc}]*$/u, 'no control characters')
    .refine((value) => !LONE_SURROGATE.test(value), 'no lone surrogates');
// JSON.stringify escapes NUL and lone surrogates (and only those of concern) as \u0000 and \ud8xx-\udfxx.
const storableJson = (value: unknown) => !/\\u0000|\\ud[89a-f]/i.test(JSON.stringify(value));

/** The body of a switch change; fields left out keep their value. */
export const switchChangeSchema = z
  .strictObject({
    intakeOff: z.boolean().optional(),
    processingPaused: z.boolean().optional(),
    // Shown in the 503 of a closed intake: say why, and until when if known.
    reason: printable(500).nullable().optional(),
  })
  .refine((change) => change.intakeOff !== undefined || change.processingPaused !== undefined || change.reason !== undefined, 'change at least one of intakeOff, processingPaused, reason');

/** Where a switch applies: a job kind (one of `kinds`) or a tenant. */
export function switchTargetSchema(kinds: readonly string[]) {
  return z
    .strictObject({ scope: z.enum(switchScopes), subject })
    .refine((target) => target.scope !== 'kind' || kinds.includes(target.subject), { error: `not a job kind (known: ${kinds.join(', ')})`, path: ['subject'] });
}

export function switchChange(target: Pick<FleetSwitchChange, 'scope' | 'subject'>, change: z.output<typeof switchChangeSchema>): FleetSwitchChange {
  return { ...target, ...change };
}

const variantValue = z.union([
  z.boolean(),
  printable(1000),
  z.number(),
  z.record(z.string(), z.unknown()).refine((value) => storableJson(value) && JSON.stringify(value).length <= 10_000, 'at most 10,000 characters of JSON, no NUL or lone surrogates'),
]);

/** A flag's definition as the admin API and the CLI take it (the key comes from the path or the command). */
export const flagDefinitionSchema = z
  .strictObject({
    description: printable(500).default(''),
    enabled: z.boolean(),
    variants: z.record(variantName, variantValue).refine((variants) => Object.keys(variants).length >= 1 && Object.keys(variants).length <= 20, '1 to 20 variants'),
    rolloutVariant: variantName,
    defaultVariant: variantName,
    killVariant: variantName,
    tenants: z.array(subject).max(1000).default([]),
    percentage: z.number().int().min(0).max(100).default(0),
  })
  .superRefine((flag, ctx) => {
    for (const field of ['rolloutVariant', 'defaultVariant', 'killVariant'] as const) {
      if (!(flag[field] in flag.variants)) ctx.addIssue({ code: 'custom', path: [field], message: `not one of the variants (${Object.keys(flag.variants).join(', ')})` });
    }
  });

export function flagDefinition(key: string, body: z.output<typeof flagDefinitionSchema>): FeatureFlagDefinition {
  return { key, ...body, tenants: [...new Set(body.tenants)] };
}
