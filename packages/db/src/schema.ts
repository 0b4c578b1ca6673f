import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  check,
  date,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

// The single source of the tables. After editing, run `npm run db:generate` and commit the SQL.

export const tenants = pgTable('tenants', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  // A tier of config.tenants.tiers (rate limits and quotas); null: the configured default tier.
  tier: text('tier'),
  // Single limits that differ from the tier's (LimitOverrides: validated on write and on read).
  limitOverrides: jsonb('limit_overrides').notNull().default({}),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});

export const apiKeys = pgTable(
  'api_keys',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id),
    // sha256 hex of the key; the key itself is shown once at creation and never stored.
    keyHash: text('key_hash').notNull(),
    // Short non-secret prefix so operators can tell keys apart in listings.
    keyPrefix: text('key_prefix').notNull(),
    name: text('name').notNull(),
    scopes: text('scopes').array().notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
    // Past this instant the key authenticates nothing; null: no expiry.
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    // Written at most once a minute per key (by the API process that sees it), so it is approximate.
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
    // Set on a key retired by rotation: the id of the key that replaced it.
    replacedBy: text('replaced_by'),
  },
  (t) => [uniqueIndex('api_keys_key_hash_uq').on(t.keyHash), index('api_keys_tenant_idx').on(t.tenantId)],
);

export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id),
    // Scope of the key: the endpoint it was used on (e.g. "calendar-sync").
    scope: text('scope').notNull(),
    key: text('key').notNull(),
    // sha256 of the canonical request body: same key + other body is refused.
    requestHash: text('request_hash').notNull(),
    jobId: text('job_id').notNull(),
    // null while the first request is still being accepted (a concurrent duplicate gets 409).
    statusCode: smallint('status_code'),
    response: jsonb('response'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.scope, t.key] }),
    index('idempotency_keys_expires_idx').on(t.expiresAt),
    index('idempotency_keys_job_idx').on(t.jobId),
  ],
);

// waiting: deferred because a dependency is known to be unavailable (open breaker, lost WSAA ticket; no attempt spent).
// cancelled: an operator or tenant admin removed the entity's job before it ran.
export const syncStatusValues = ['pending', 'running', 'waiting', 'synced', 'failed', 'cancelled'] as const;
export type SyncStatusValue = (typeof syncStatusValues)[number];

export const syncStatus = pgTable(
  'sync_status',
  {
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id),
    // What is synced: "reservation", "afip-invoice", ...
    kind: text('kind').notNull(),
    entityId: text('entity_id').notNull(),
    status: text('status', { enum: syncStatusValues }).notNull(),
    // Highest payload version seen; older versions never overwrite newer ones. bigint: requests
    // may carry any safe integer (calendar-sync allows up to 2^53 - 1).
    version: bigint('version', { mode: 'number' }).notNull().default(0),
    jobId: text('job_id'),
    attempts: integer('attempts').notNull().default(0),
    lastError: jsonb('last_error'),
    // Id of the effect at the dependency (Calendar event id, CAE, ...).
    externalRef: text('external_ref'),
    lastSyncedAt: timestamp('last_synced_at', { withTimezone: true }),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.kind, t.entityId] }),
    index('sync_status_tenant_status_idx').on(t.tenantId, t.kind, t.status, t.updatedAt),
    index('sync_status_job_idx').on(t.jobId),
    check('sync_status_status_ck', sql`${t.status} in ('pending','running','waiting','synced','failed','cancelled')`),
  ],
);

export const lockAuditEvents = ['acquired', 'conflict', 'extended', 'released', 'expired', 'lost'] as const;
export type LockAuditEvent = (typeof lockAuditEvents)[number];

/**
 * Append-only (triggers reject UPDATE and DELETE) and hash-chained per `chain` (one chain per lock
 * key): hash = sha256(prev_hash || canonical JSON of the row), so any edit breaks every later link.
 * Partitioned by month of `recorded_at` (migration 0011; drizzle cannot declare it): retention
 * drops whole old months, leaving a signed checkpoint of each chain's head at the cut.
 */
export const lockAudit = pgTable(
  'lock_audit',
  {
    id: bigserial('id', { mode: 'number' }).notNull(),
    chain: text('chain').notNull(),
    // Position in the chain, 1-based, no gaps.
    seq: bigint('seq', { mode: 'number' }).notNull(),
    lockKey: text('lock_key').notNull(),
    event: text('event', { enum: lockAuditEvents }).notNull(),
    // Worker id of the holder (or the contender, for a conflict).
    owner: text('owner').notNull(),
    tenantId: text('tenant_id'),
    jobId: text('job_id'),
    fencingToken: bigint('fencing_token', { mode: 'number' }),
    details: jsonb('details').notNull().default({}),
    at: timestamp('at', { withTimezone: true, mode: 'string' }).notNull(),
    prevHash: text('prev_hash').notNull(),
    hash: text('hash').notNull(),
    // When the row was written (not hashed): the partition key. Taken with clock_timestamp() after
    // the chain's lock, so within a chain it never goes back as seq goes up, and a month's
    // partition holds a prefix of every chain.
    recordedAt: timestamp('recorded_at', { withTimezone: true })
      .notNull()
      .default(sql`clock_timestamp()`),
  },
  (t) => [
    // A partitioned table's keys must hold the partition key. Writers of a chain are serialised by
    // an advisory lock, and the verifier reports a repeated seq, so (chain, seq) stays unique.
    primaryKey({ columns: [t.id, t.recordedAt] }),
    uniqueIndex('lock_audit_chain_seq_uq').on(t.chain, t.seq, t.recordedAt),
    index('lock_audit_lock_key_at_idx').on(t.lockKey, t.at),
    check('lock_audit_event_ck', sql`${t.event} in ('acquired','conflict','extended','released','expired','lost')`),
  ],
);

/**
 * A chain's head (seq and hash of its last row) at a retention cut, signed (HMAC of a key derived
 * from the secrets keyring): the verifier starts the chain's remaining rows from it, so dropping
 * old partitions keeps the rest provable. Written in the transaction that drops the partition.
 */
export const lockAuditCheckpoints = pgTable(
  'lock_audit_checkpoints',
  {
    chain: text('chain').notNull(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    hash: text('hash').notNull(),
    // Rows recorded before this instant are gone.
    cutAt: timestamp('cut_at', { withTimezone: true }).notNull(),
    keyId: text('key_id').notNull(),
    signature: text('signature').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.chain, t.seq] })],
);

// reserved: number chosen, AFIP not yet known to have it; released: a dead reservation whose number
// AFIP never took, freed for the next invoice; rejected: AFIP refused the voucher (number not consumed).
export const afipInvoiceStatuses = ['reserved', 'authorized', 'rejected', 'released'] as const;
export type AfipInvoiceStatus = (typeof afipInvoiceStatuses)[number];

/** One row per invoice number reserved at AFIP; the unique number key is the fleet-wide fence. */
export const afipInvoices = pgTable(
  'afip_invoices',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id),
    idempotencyKey: text('idempotency_key').notNull(),
    jobId: text('job_id'),
    cuit: bigint('cuit', { mode: 'number' }).notNull(),
    ptoVta: integer('pto_vta').notNull(),
    cbteTipo: integer('cbte_tipo').notNull(),
    cbteNro: bigint('cbte_nro', { mode: 'number' }).notNull(),
    status: text('status', { enum: afipInvoiceStatuses }).notNull(),
    cae: text('cae'),
    // YYYYMMDD as AFIP sends it.
    caeDueDate: text('cae_due_date'),
    request: jsonb('request').notNull(),
    // AFIP's answer: result, errors and observations with their codes.
    response: jsonb('response'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('afip_invoices_idempotency_uq').on(t.tenantId, t.idempotencyKey),
    // Only live numbers are unique: rejected and released ones were never consumed at AFIP.
    uniqueIndex('afip_invoices_number_uq')
      .on(t.tenantId, t.cuit, t.ptoVta, t.cbteTipo, t.cbteNro)
      .where(sql`${t.status} in ('reserved', 'authorized')`),
    check('afip_invoices_status_ck', sql`${t.status} in ('reserved','authorized','rejected','released')`),
    index('afip_invoices_tenant_status_idx').on(t.tenantId, t.status, t.createdAt),
  ],
);

/**
 * The newest fencing token seen per voucher series (tenant, CUIT, point of sale, voucher type), and
 * the series' last authorised number. Every reservation and settlement of a number carries its
 * lock's token and is refused when an older one: a holder paused past its lock's TTL can then
 * record nothing.
 */
export const afipVoucherFences = pgTable(
  'afip_voucher_fences',
  {
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id),
    cuit: bigint('cuit', { mode: 'number' }).notNull(),
    ptoVta: integer('pto_vta').notNull(),
    cbteTipo: integer('cbte_tipo').notNull(),
    fencingToken: bigint('fencing_token', { mode: 'number' }).notNull(),
    // The series' last number AFIP authorised as the fleet knows it, written with the settlement that
    // learnt it (so FECompUltimoAutorizado is asked only when this is null, or on a numbering error).
    lastCbteNro: bigint('last_cbte_nro', { mode: 'number' }),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.cuit, t.ptoVta, t.cbteTipo] })],
);

/**
 * An AFIP issuer: a CUIT with the certificate and key that represent it before AFIP. A CUIT
 * belongs to exactly one tenant. `secret` is a sealed envelope (@jobfleet/secrets) of both PEMs.
 */
export const afipIssuers = pgTable(
  'afip_issuers',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id),
    cuit: bigint('cuit', { mode: 'number' }).notNull(),
    secret: jsonb('secret').notNull(),
    // Id of the key that wraps `secret`: rows still under a retired key are found by it.
    keyId: text('key_id').notNull(),
    // Non-secret facts of the certificate, for listings.
    certificateSubject: text('certificate_subject').notNull(),
    certificateFingerprint: text('certificate_fingerprint').notNull(),
    certificateNotAfter: timestamp('certificate_not_after', { withTimezone: true }).notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('afip_issuers_cuit_uq').on(t.cuit), index('afip_issuers_tenant_idx').on(t.tenantId)],
);

export const googleAuthKinds = ['service-account', 'oauth-refresh-token', 'access-token'] as const;
export type GoogleAuthKind = (typeof googleAuthKinds)[number];
// allowlist: only `calendars`; credential: whatever the tenant's own credential may write to.
export const calendarPolicies = ['allowlist', 'credential'] as const;
export type CalendarPolicy = (typeof calendarPolicies)[number];

/** A tenant's Google Calendar connection (one per tenant); `secret` is a sealed credential. */
export const googleConnections = pgTable(
  'google_connections',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id),
    authKind: text('auth_kind', { enum: googleAuthKinds }).notNull(),
    // Who the credential acts as (service-account email, OAuth client id), for listings.
    principal: text('principal').notNull(),
    calendarPolicy: text('calendar_policy', { enum: calendarPolicies }).notNull(),
    calendars: text('calendars').array().notNull(),
    secret: jsonb('secret').notNull(),
    keyId: text('key_id').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('google_connections_tenant_uq').on(t.tenantId),
    check('google_connections_auth_kind_ck', sql`${t.authKind} in ('service-account','oauth-refresh-token','access-token')`),
    check('google_connections_policy_ck', sql`${t.calendarPolicy} in ('allowlist','credential')`),
  ],
);

export const backupStatuses = ['running', 'succeeded', 'failed', 'pruned'] as const;
export type BackupStatus = (typeof backupStatuses)[number];

/** One row per backup run; a scheduled run is keyed by (schedule, slot) so a slot runs once. */
export const backups = pgTable(
  'backups',
  {
    id: text('id').primaryKey(),
    // The backup definition's name (config), or "on-demand".
    schedule: text('schedule').notNull(),
    // The cron slot this run belongs to (ISO time); null for on-demand runs.
    slot: timestamp('slot', { withTimezone: true }),
    // Who asked for an on-demand run.
    tenantId: text('tenant_id'),
    jobId: text('job_id'),
    // New on every (re)start of the run: only the attempt holding it may finish the row, so a run
    // that lost its job lock to another worker cannot overwrite the newer attempt's result.
    runToken: text('run_token'),
    target: text('target').notNull(),
    location: text('location'),
    bytes: bigint('bytes', { mode: 'number' }),
    sha256: text('sha256'),
    status: text('status', { enum: backupStatuses }).notNull(),
    error: jsonb('error'),
    // Result of the restore check (pg_restore --list, or a full restore into a scratch database).
    restoreCheck: jsonb('restore_check'),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull(),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('backups_schedule_slot_uq').on(t.schedule, t.slot),
    index('backups_started_idx').on(t.startedAt, t.id),
    index('backups_schedule_status_idx').on(t.schedule, t.status, t.startedAt),
    check('backups_status_ck', sql`${t.status} in ('running','succeeded','failed','pruned')`),
  ],
);

/**
 * Every operator or tenant-admin action on jobs, switches and flags, and every automatic flag
 * rollback: who, when, what, and the filter used. Append-only (triggers refuse UPDATE and TRUNCATE);
 * DELETE is refused unless the transaction sets `jobfleet.retention = 'on'`, which only the
 * retention job does.
 */
export const adminAudit = pgTable(
  'admin_audit',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    // "api-key:<id>", "operator:<user>" (HTTP Basic), "cli:<user>" or "system:<component>".
    actor: text('actor').notNull(),
    // The tenant of the actor's API key; null for operators and the system.
    actorTenantId: text('actor_tenant_id'),
    // Dotted verb, e.g. "job.retry", "jobs.bulk-retry", "switch.set", "flag.rollback".
    action: text('action').notNull(),
    // The tenant acted on; null for fleet-wide actions.
    tenantId: text('tenant_id'),
    // What was acted on (job ids, a switch, a flag key), as the action defines it.
    target: jsonb('target').notNull().default({}),
    // The filter of a bulk action, as given.
    filter: jsonb('filter'),
    // The outcome: counts, previous and new values, the reason of a rollback.
    detail: jsonb('detail').notNull().default({}),
  },
  (t) => [index('admin_audit_at_idx').on(t.at), index('admin_audit_tenant_at_idx').on(t.tenantId, t.at)],
);

/**
 * Calls to deprecated API routes (today: every /v1 route), per API key, route and UTC day, so
 * operators see who still calls a version before it goes. Each API process counts in memory and
 * adds its counts here every API_DEPRECATION_FLUSH_MS, one statement for all of them.
 */
export const apiDeprecatedUsage = pgTable(
  'api_deprecated_usage',
  {
    keyId: text('key_id')
      .notNull()
      .references(() => apiKeys.id, { onDelete: 'cascade' }),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id),
    // The route pattern with its method, e.g. "GET /v1/jobs/:id": never the raw URL.
    route: text('route').notNull(),
    day: date('day', { mode: 'string' }).notNull(),
    count: bigint('count', { mode: 'number' }).notNull(),
    lastSeen: timestamp('last_seen', { withTimezone: true }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.keyId, t.route, t.day] }), index('api_deprecated_usage_day_idx').on(t.day)],
);

// What a kill switch applies to: every job of a kind, or every job of a tenant (of any kind).
export const switchScopes = ['kind', 'tenant'] as const;
export type SwitchScope = (typeof switchScopes)[number];

/**
 * Kill switches, one row per (scope, subject) that an operator set: `intake_off` makes the API
 * answer 503, `processing_paused` makes workers leave those jobs waiting. Fleet state: every process
 * caches the table and reloads it on a Redis message or its poll.
 */
export const fleetSwitches = pgTable(
  'fleet_switches',
  {
    scope: text('scope', { enum: switchScopes }).notNull(),
    // A job kind's name, or a tenant id.
    subject: text('subject').notNull(),
    intakeOff: boolean('intake_off').notNull().default(false),
    processingPaused: boolean('processing_paused').notNull().default(false),
    // Why, as the operator said it: the API's 503 repeats it.
    reason: text('reason'),
    updatedBy: text('updated_by').notNull(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.scope, t.subject] })],
);

/**
 * Feature flags for behaviour that is rolling out, evaluated through OpenFeature with the tenant as
 * targeting key: a disabled flag serves its kill variant to everyone; an enabled one serves the
 * rollout variant to the listed tenants and to `percentage` % of the others (a stable hash of flag
 * key and tenant), the default variant to the rest.
 */
export const featureFlags = pgTable('feature_flags', {
  key: text('key').primaryKey(),
  description: text('description').notNull().default(''),
  enabled: boolean('enabled').notNull().default(false),
  // Variant name -> value (boolean, string, number or JSON object).
  variants: jsonb('variants').notNull(),
  rolloutVariant: text('rollout_variant').notNull(),
  defaultVariant: text('default_variant').notNull(),
  killVariant: text('kill_variant').notNull(),
  tenants: text('tenants').array().notNull().default(sql`'{}'::text[]`),
  percentage: integer('percentage').notNull().default(0),
  // Why it was last turned off, when the automatic rollback did it (ratio, sample, window).
  disabledReason: text('disabled_reason'),
  updatedBy: text('updated_by').notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

// A job's state as Postgres last heard it (BullMQ's prioritized is waiting here); cancelled: removed
// by an admin before it ran.
export const jobStates = ['waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled'] as const;
export type JobState = (typeof jobStates)[number];

/**
 * One row per job of any kind: what the admin API lists and searches, so a job Redis no longer
 * retains is still found. Written by the API's acceptor when the job is accepted (one statement per
 * batch) and by the workers' attempt history (one statement per tick); a scheduled job (backups)
 * gets its row with its first attempt. `created_at` is the job's enqueue time and tells a reused id
 * (its idempotency key expired) from the job before it.
 */
export const jobs = pgTable(
  'jobs',
  {
    // The queue (job kind) and BullMQ's job id: ids are unique per queue only.
    kind: text('kind').notNull(),
    id: text('id').notNull(),
    // null for a scheduled job nobody asked for (a backup definition's cron run).
    tenantId: text('tenant_id'),
    // The entity the job is about: reservationId, invoiceId, backup definition (the kind's entityId).
    businessKey: text('business_key'),
    idempotencyKey: text('idempotency_key'),
    state: text('state', { enum: jobStates }).notNull(),
    // Attempts spent so far (a started attempt counts).
    attempts: integer('attempts').notNull().default(0),
    // The last failed attempt's error ({ code, message }); null once the job completes.
    lastError: jsonb('last_error'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.kind, t.id] }),
    // Keyset pages are newest first by (created_at, kind, id), fleet-wide or per tenant.
    index('jobs_created_idx').on(t.createdAt, t.kind, t.id),
    index('jobs_tenant_created_idx').on(t.tenantId, t.createdAt),
    index('jobs_state_created_idx').on(t.state, t.createdAt),
    index('jobs_id_idx').on(t.id),
    index('jobs_business_key_idx').on(t.businessKey),
    index('jobs_idempotency_key_idx').on(t.idempotencyKey),
    check('jobs_state_ck', sql`${t.state} in ('waiting','delayed','active','completed','failed','cancelled')`),
  ],
);

export const jobAttemptOutcomes = ['completed', 'retried', 'failed', 'delayed', 'interrupted'] as const;
export type JobAttemptOutcome = (typeof jobAttemptOutcomes)[number];

/**
 * Each run of a job's processor: start, end, worker, outcome, error. A run is keyed by BullMQ's
 * attemptsStarted, so a stalled run re-run by another worker is a row of its own; one whose worker
 * died keeps no end. Written by the workers' attempt history (one statement per tick).
 */
export const jobAttempts = pgTable(
  'job_attempts',
  {
    kind: text('kind').notNull(),
    jobId: text('job_id').notNull(),
    run: integer('run').notNull(),
    // The attempt number as the retry policy counts it (1 for the first); delayed runs spend none.
    attempt: integer('attempt').notNull(),
    workerId: text('worker_id').notNull(),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull(),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
    // null while running (or when its worker died mid-run).
    outcome: text('outcome', { enum: jobAttemptOutcomes }),
    errorCode: text('error_code'),
    errorMessage: text('error_message'),
  },
  (t) => [
    primaryKey({ columns: [t.kind, t.jobId, t.run] }),
    check('job_attempts_outcome_ck', sql`${t.outcome} in ('completed','retried','failed','delayed','interrupted')`),
  ],
);
