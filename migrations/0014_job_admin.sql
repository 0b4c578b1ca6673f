CREATE TABLE "job_attempts" (
	"kind" text NOT NULL,
	"job_id" text NOT NULL,
	"run" integer NOT NULL,
	"attempt" integer NOT NULL,
	"worker_id" text NOT NULL,
	"started_at" timestamp with time zone NOT NULL,
	"finished_at" timestamp with time zone,
	"outcome" text,
	"error_code" text,
	"error_message" text,
	CONSTRAINT "job_attempts_kind_job_id_run_pk" PRIMARY KEY("kind","job_id","run"),
	CONSTRAINT "job_attempts_outcome_ck" CHECK ("job_attempts"."outcome" in ('completed','retried','failed','delayed','interrupted'))
);
--> statement-breakpoint
CREATE TABLE "jobs" (
	"kind" text NOT NULL,
	"id" text NOT NULL,
	"tenant_id" text,
	"business_key" text,
	"idempotency_key" text,
	"state" text NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error" jsonb,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "jobs_kind_id_pk" PRIMARY KEY("kind","id"),
	CONSTRAINT "jobs_state_ck" CHECK ("jobs"."state" in ('waiting','delayed','active','completed','failed','cancelled'))
);
--> statement-breakpoint
ALTER TABLE "sync_status" DROP CONSTRAINT "sync_status_status_ck";--> statement-breakpoint
CREATE INDEX "jobs_created_idx" ON "jobs" USING btree ("created_at","kind","id");--> statement-breakpoint
CREATE INDEX "jobs_tenant_created_idx" ON "jobs" USING btree ("tenant_id","created_at");--> statement-breakpoint
CREATE INDEX "jobs_state_created_idx" ON "jobs" USING btree ("state","created_at");--> statement-breakpoint
CREATE INDEX "jobs_id_idx" ON "jobs" USING btree ("id");--> statement-breakpoint
CREATE INDEX "jobs_business_key_idx" ON "jobs" USING btree ("business_key");--> statement-breakpoint
CREATE INDEX "jobs_idempotency_key_idx" ON "jobs" USING btree ("idempotency_key");--> statement-breakpoint
ALTER TABLE "sync_status" ADD CONSTRAINT "sync_status_status_ck" CHECK ("sync_status"."status" in ('pending','running','waiting','synced','failed','cancelled'));