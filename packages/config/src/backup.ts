import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';

/**
 * Backup definitions and targets, from BACKUP_DEFINITIONS / BACKUP_TARGETS (JSON). Validated in
 * full at boot, so a typo in a cron or a target name stops the process with a message naming it
 * instead of failing every scheduled run later.
 */

// No dots and no doubled separators: a file is `<definition>.<slot>.<id>.dump`, so the prefix
// `<definition>.` of one definition never matches another's files.
export const BACKUP_DEFINITION_NAME = /^[a-z0-9]+(?:[-_][a-z0-9]+)*$/;

export type BackupFormat = 'custom' | 'plain';
export type RestoreCheckMode = 'none' | 'list' | 'full';

export type BackupTargetConfig =
  | { name: string; type: 'filesystem'; directory: string }
  | {
      name: string;
      type: 's3';
      bucket: string;
      /** Key prefix, '' or ending in '/'. */
      prefix: string;
      endpoint: string | undefined;
      region: string;
      forcePathStyle: boolean;
    };

export interface BackupDefinition {
  name: string;
  databaseUrl: string;
  format: BackupFormat;
  target: BackupTargetConfig;
  cron: string;
  timezone: string;
  retention: { keepLast?: number; maxAgeDays?: number };
  restoreCheck: RestoreCheckMode;
  /** A restore check of the newest successful backup on its own schedule (same time zone). */
  verify: { cron: string; mode: 'list' | 'full' } | undefined;
}

export interface BackupConfig {
  definitions: readonly BackupDefinition[];
  targets: readonly BackupTargetConfig[];
  timeoutMs: number;
  maxConcurrent: number;
  /** Resident memory of this process above which no backup starts and a running one stops. */
  memoryLimitBytes: number;
  /** Server where full restore checks create their scratch databases. */
  scratchServerUrl: string | undefined;
  s3: {
    accessKeyId: string | undefined;
    secretAccessKey: string | undefined;
    partSizeBytes: number;
    queueSize: number;
    requestTimeoutMs: number;
  };
}

const targetSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('filesystem'), directory: z.string().min(1) }),
  z.strictObject({
    type: z.literal('s3'),
    bucket: z.string().min(3).max(63),
    prefix: z
      .string()
      .default('')
      .refine((p) => p === '' || (p.endsWith('/') && !p.startsWith('/')), "must be '' or end with '/' (and not start with it)"),
    endpoint: z.url().optional(),
    region: z.string().min(1).default('us-east-1'),
    forcePathStyle: z.boolean().default(false),
  }),
]);

function validTimezone(timezone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}

const definitionSchema = z
  .strictObject({
    name: z.string().max(63).regex(BACKUP_DEFINITION_NAME, 'lowercase letters and digits, words joined by single - or _'),
    // Default: the fleet's own database (DATABASE_URL).
    databaseUrl: z.string().optional(),
    format: z.enum(['custom', 'plain']).default('custom'),
    target: z.string().min(1),
    cron: z.string().min(1),
    timezone: z.string().default('UTC').refine(validTimezone, 'unknown IANA time zone'),
    retention: z
      .strictObject({ keepLast: z.number().int().min(1).optional(), maxAgeDays: z.number().positive().optional() })
      .default({}),
    restoreCheck: z.enum(['none', 'list', 'full']).default('list'),
    verify: z.strictObject({ cron: z.string().min(1), mode: z.enum(['list', 'full']).default('list') }).optional(),
  })
  .superRefine((definition, context) => {
    try {
      CronExpressionParser.parse(definition.cron, { tz: validTimezone(definition.timezone) ? definition.timezone : 'UTC' });
    } catch (error) {
      context.addIssue({ code: 'custom', path: ['cron'], message: `invalid cron "${definition.cron}": ${(error as Error).message}` });
    }
    if (definition.verify !== undefined) {
      try {
        CronExpressionParser.parse(definition.verify.cron, { tz: 'UTC' });
      } catch (error) {
        context.addIssue({ code: 'custom', path: ['verify', 'cron'], message: `invalid cron "${definition.verify.cron}": ${(error as Error).message}` });
      }
    }
    if (definition.databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(definition.databaseUrl)) {
      context.addIssue({ code: 'custom', path: ['databaseUrl'], message: 'must be a postgres:// or postgresql:// URL' });
    }
  });

export interface BackupEnv {
  BACKUP_DEFINITIONS: string | undefined;
  BACKUP_TARGETS: string | undefined;
  BACKUP_TIMEOUT_SECONDS: number;
  MAX_CONCURRENT_BACKUPS: number;
  BACKUP_MEMORY_LIMIT_MB: number;
  BACKUP_RESTORE_SCRATCH_URL: string | undefined;
  BACKUP_S3_ACCESS_KEY_ID: string | undefined;
  BACKUP_S3_SECRET_ACCESS_KEY: string | undefined;
  BACKUP_S3_PART_SIZE_MB: number;
  BACKUP_S3_QUEUE_SIZE: number;
  BACKUP_S3_TIMEOUT_SECONDS: number;
  DATABASE_URL: string | undefined;
}

function parseJson(variable: string, raw: string | undefined, fallback: unknown, issues: string[]): unknown {
  if (raw === undefined) return fallback;
  try {
    return JSON.parse(raw) as unknown;
  } catch (error) {
    issues.push(`${variable}: not valid JSON (${(error as Error).message})`);
    return fallback;
  }
}

function pushIssues(variable: string, error: z.ZodError, issues: string[]): void {
  for (const issue of error.issues) {
    const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
    issues.push(`${variable}${path}: ${issue.message}`);
  }
}

export function parseBackupConfig(env: BackupEnv, issues: string[]): BackupConfig {
  const rawTargets = z.record(z.string().regex(BACKUP_DEFINITION_NAME, 'target names: lowercase words joined by - or _'), targetSchema).safeParse(
    parseJson('BACKUP_TARGETS', env.BACKUP_TARGETS, {}, issues),
  );
  if (!rawTargets.success) pushIssues('BACKUP_TARGETS', rawTargets.error, issues);
  const targets: BackupTargetConfig[] = Object.entries(rawTargets.success ? rawTargets.data : {}).map(([name, target]) =>
    target.type === 'filesystem' ? { name, ...target } : { name, ...target, endpoint: target.endpoint },
  );

  const rawDefinitions = z.array(z.unknown()).safeParse(parseJson('BACKUP_DEFINITIONS', env.BACKUP_DEFINITIONS, [], issues));
  if (!rawDefinitions.success) pushIssues('BACKUP_DEFINITIONS', rawDefinitions.error, issues);
  const definitions: BackupDefinition[] = [];
  const seen = new Set<string>();
  // Entry by entry, so one bad definition does not hide what is wrong with the others.
  for (const [index, raw] of (rawDefinitions.success ? rawDefinitions.data : []).entries()) {
    const parsed = definitionSchema.safeParse(raw);
    if (!parsed.success) {
      pushIssues(`BACKUP_DEFINITIONS[${index}]`, parsed.error, issues);
      continue;
    }
    const definition = parsed.data;
    const at = `BACKUP_DEFINITIONS[${index}]`;
    if (seen.has(definition.name)) issues.push(`${at}.name: "${definition.name}" is defined twice`);
    seen.add(definition.name);
    const target = targets.find((t) => t.name === definition.target);
    if (target === undefined) {
      const known = targets.map((t) => t.name).join(', ') || 'none (set BACKUP_TARGETS)';
      issues.push(`${at}.target: unknown target "${definition.target}"; known: ${known}`);
    }
    const databaseUrl = definition.databaseUrl ?? env.DATABASE_URL;
    if (databaseUrl === undefined) issues.push(`${at}.databaseUrl: required when DATABASE_URL is not set`);
    const scratchNeeded = 'needs BACKUP_RESTORE_SCRATCH_URL (a server where scratch databases may be created)';
    if (definition.restoreCheck === 'full' && env.BACKUP_RESTORE_SCRATCH_URL === undefined) issues.push(`${at}.restoreCheck: "full" ${scratchNeeded}`);
    if (definition.verify?.mode === 'full' && env.BACKUP_RESTORE_SCRATCH_URL === undefined) issues.push(`${at}.verify.mode: "full" ${scratchNeeded}`);
    if (target !== undefined && databaseUrl !== undefined) definitions.push({ ...definition, databaseUrl, target, verify: definition.verify });
  }

  if ((env.BACKUP_S3_ACCESS_KEY_ID === undefined) !== (env.BACKUP_S3_SECRET_ACCESS_KEY === undefined)) {
    issues.push('BACKUP_S3_ACCESS_KEY_ID / BACKUP_S3_SECRET_ACCESS_KEY: set both or neither');
  }
  return {
    definitions,
    targets,
    timeoutMs: env.BACKUP_TIMEOUT_SECONDS * 1000,
    maxConcurrent: env.MAX_CONCURRENT_BACKUPS,
    memoryLimitBytes: env.BACKUP_MEMORY_LIMIT_MB * 1024 * 1024,
    scratchServerUrl: env.BACKUP_RESTORE_SCRATCH_URL,
    s3: {
      accessKeyId: env.BACKUP_S3_ACCESS_KEY_ID,
      secretAccessKey: env.BACKUP_S3_SECRET_ACCESS_KEY,
      partSizeBytes: env.BACKUP_S3_PART_SIZE_MB * 1024 * 1024,
      queueSize: env.BACKUP_S3_QUEUE_SIZE,
      requestTimeoutMs: env.BACKUP_S3_TIMEOUT_SECONDS * 1000,
    },
  };
}
