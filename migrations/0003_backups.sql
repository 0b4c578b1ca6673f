CREATE TABLE "backups" (
	"id" text PRIMARY KEY NOT NULL,
	"schedule" text NOT NULL,
	"slot" timestamp with time zone,
	"tenant_id" text,
	"job_id" text,
	"target" text NOT NULL,
	"location" text,
	"bytes" bigint,
	"sha256" text,
	"status" text NOT NULL,
	"error" jsonb,
	"restore_check" jsonb,
	"started_at" timestamp with time zone NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "backups_status_ck" CHECK ("backups"."status" in ('running','succeeded','failed','pruned'))
);
--> statement-breakpoint
CREATE UNIQUE INDEX "backups_schedule_slot_uq" ON "backups" USING btree ("schedule","slot");--> statement-breakpoint
CREATE INDEX "backups_started_idx" ON "backups" USING btree ("started_at","id");--> statement-breakpoint
CREATE INDEX "backups_schedule_status_idx" ON "backups" USING btree ("schedule","status","started_at");