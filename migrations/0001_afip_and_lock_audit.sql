CREATE TABLE "afip_invoices" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"idempotency_key" text NOT NULL,
	"job_id" text,
	"cuit" bigint NOT NULL,
	"pto_vta" integer NOT NULL,
	"cbte_tipo" integer NOT NULL,
	"cbte_nro" bigint NOT NULL,
	"status" text NOT NULL,
	"cae" text,
	"cae_due_date" text,
	"request" jsonb NOT NULL,
	"response" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "afip_invoices_status_ck" CHECK ("afip_invoices"."status" in ('reserved','authorized','rejected','released'))
);
--> statement-breakpoint
CREATE TABLE "lock_audit" (
	"id" bigserial PRIMARY KEY NOT NULL,
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
	CONSTRAINT "lock_audit_event_ck" CHECK ("lock_audit"."event" in ('acquired','conflict','extended','released','expired','lost'))
);
--> statement-breakpoint
ALTER TABLE "afip_invoices" ADD CONSTRAINT "afip_invoices_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "afip_invoices_idempotency_uq" ON "afip_invoices" USING btree ("tenant_id","idempotency_key");--> statement-breakpoint
CREATE UNIQUE INDEX "afip_invoices_number_uq" ON "afip_invoices" USING btree ("cuit","pto_vta","cbte_tipo","cbte_nro") WHERE "afip_invoices"."status" in ('reserved', 'authorized');--> statement-breakpoint
CREATE INDEX "afip_invoices_tenant_status_idx" ON "afip_invoices" USING btree ("tenant_id","status","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "lock_audit_chain_seq_uq" ON "lock_audit" USING btree ("chain","seq");--> statement-breakpoint
CREATE INDEX "lock_audit_lock_key_at_idx" ON "lock_audit" USING btree ("lock_key","at");