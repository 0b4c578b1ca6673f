CREATE TABLE "lock_audit_checkpoints" (
	"chain" text NOT NULL,
	"seq" bigint NOT NULL,
	"hash" text NOT NULL,
	"cut_at" timestamp with time zone NOT NULL,
	"key_id" text NOT NULL,
	"signature" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "lock_audit_checkpoints_chain_seq_pk" PRIMARY KEY("chain","seq")
);
--> statement-breakpoint
-- Custom SQL in place of what drizzle-kit generated: lock_audit becomes a table partitioned by month
-- of recorded_at (drizzle cannot declare partitioning; the columns, keys and indexes below are the
-- schema's). Existing rows move with recorded_at = at, into the month partitions created for them.
ALTER TABLE "lock_audit" RENAME TO "lock_audit_unpartitioned";--> statement-breakpoint
ALTER TABLE "lock_audit_unpartitioned" RENAME CONSTRAINT "lock_audit_event_ck" TO "lock_audit_unpartitioned_event_ck";--> statement-breakpoint
ALTER INDEX "lock_audit_chain_seq_uq" RENAME TO "lock_audit_unpartitioned_chain_seq_uq";--> statement-breakpoint
ALTER INDEX "lock_audit_lock_key_at_idx" RENAME TO "lock_audit_unpartitioned_lock_key_at_idx";--> statement-breakpoint
CREATE TABLE "lock_audit" (
	"id" bigint DEFAULT nextval('lock_audit_id_seq') NOT NULL,
	"chain" text NOT NULL,
	"seq" bigint NOT NULL,
	"lock_key" text NOT NULL,
	"event" text NOT NULL,
	"owner" text NOT NULL,
	"tenant_id" text,
	"job_id" text,
	"fencing_token" bigint,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"prev_hash" text NOT NULL,
	"hash" text NOT NULL,
	"recorded_at" timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
	CONSTRAINT "lock_audit_id_recorded_at_pk" PRIMARY KEY("id","recorded_at"),
	CONSTRAINT "lock_audit_event_ck" CHECK ("lock_audit"."event" in ('acquired','conflict','extended','released','expired','lost'))
) PARTITION BY RANGE ("recorded_at");--> statement-breakpoint
ALTER SEQUENCE "lock_audit_id_seq" OWNED BY "lock_audit"."id";--> statement-breakpoint
CREATE UNIQUE INDEX "lock_audit_chain_seq_uq" ON "lock_audit" USING btree ("chain","seq","recorded_at");--> statement-breakpoint
CREATE INDEX "lock_audit_lock_key_at_idx" ON "lock_audit" USING btree ("lock_key","at");--> statement-breakpoint
-- Rows of a month without its partition land here rather than fail; retention never drops it.
CREATE TABLE "lock_audit_default" PARTITION OF "lock_audit" DEFAULT;--> statement-breakpoint
DO $$
DECLARE
  month timestamptz := date_trunc('month', least(coalesce((SELECT min("at") FROM "lock_audit_unpartitioned"), now()), now()) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
BEGIN
  WHILE month < date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '3 months' LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF "lock_audit" FOR VALUES FROM (%L) TO (%L)',
      'lock_audit_' || to_char(month AT TIME ZONE 'UTC', 'YYYY_MM'), month, month + interval '1 month');
    month := month + interval '1 month';
  END LOOP;
END;
$$;--> statement-breakpoint
INSERT INTO "lock_audit" ("id", "chain", "seq", "lock_key", "event", "owner", "tenant_id", "job_id", "fencing_token", "details", "at", "prev_hash", "hash", "recorded_at")
  SELECT "id", "chain", "seq", "lock_key", "event", "owner", "tenant_id", "job_id", "fencing_token", "details", "at", "prev_hash", "hash", "at"
  FROM "lock_audit_unpartitioned";--> statement-breakpoint
DROP TABLE "lock_audit_unpartitioned";--> statement-breakpoint
-- Append-only as before (0002). Row triggers on a partitioned table apply to every partition; the
-- statement trigger on TRUNCATE is the parent's. Retention detaches and drops whole partitions
-- after writing checkpoints, which the verifier checks.
CREATE TRIGGER lock_audit_no_update_delete BEFORE UPDATE OR DELETE ON lock_audit
  FOR EACH ROW EXECUTE FUNCTION lock_audit_reject_change();--> statement-breakpoint
CREATE TRIGGER lock_audit_no_truncate BEFORE TRUNCATE ON lock_audit
  FOR EACH STATEMENT EXECUTE FUNCTION lock_audit_reject_change();
