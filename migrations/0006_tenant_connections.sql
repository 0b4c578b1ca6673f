CREATE TABLE "afip_issuers" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"cuit" bigint NOT NULL,
	"secret" jsonb NOT NULL,
	"key_id" text NOT NULL,
	"certificate_subject" text NOT NULL,
	"certificate_fingerprint" text NOT NULL,
	"certificate_not_after" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "afip_voucher_fences" (
	"tenant_id" text NOT NULL,
	"cuit" bigint NOT NULL,
	"pto_vta" integer NOT NULL,
	"cbte_tipo" integer NOT NULL,
	"fencing_token" bigint NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "afip_voucher_fences_tenant_id_cuit_pto_vta_cbte_tipo_pk" PRIMARY KEY("tenant_id","cuit","pto_vta","cbte_tipo")
);
--> statement-breakpoint
CREATE TABLE "google_connections" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"auth_kind" text NOT NULL,
	"principal" text NOT NULL,
	"calendar_policy" text NOT NULL,
	"calendars" text[] NOT NULL,
	"secret" jsonb NOT NULL,
	"key_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "google_connections_auth_kind_ck" CHECK ("google_connections"."auth_kind" in ('service-account','oauth-refresh-token','access-token')),
	CONSTRAINT "google_connections_policy_ck" CHECK ("google_connections"."calendar_policy" in ('allowlist','credential'))
);
--> statement-breakpoint
DROP INDEX "afip_invoices_number_uq";--> statement-breakpoint
ALTER TABLE "afip_issuers" ADD CONSTRAINT "afip_issuers_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "afip_voucher_fences" ADD CONSTRAINT "afip_voucher_fences_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "google_connections" ADD CONSTRAINT "google_connections_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "afip_issuers_cuit_uq" ON "afip_issuers" USING btree ("cuit");--> statement-breakpoint
CREATE INDEX "afip_issuers_tenant_idx" ON "afip_issuers" USING btree ("tenant_id");--> statement-breakpoint
CREATE UNIQUE INDEX "google_connections_tenant_uq" ON "google_connections" USING btree ("tenant_id");--> statement-breakpoint
CREATE UNIQUE INDEX "afip_invoices_number_uq" ON "afip_invoices" USING btree ("tenant_id","cuit","pto_vta","cbte_tipo","cbte_nro") WHERE "afip_invoices"."status" in ('reserved', 'authorized');