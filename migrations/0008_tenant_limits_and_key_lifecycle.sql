ALTER TABLE "api_keys" ADD COLUMN "expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "last_used_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "replaced_by" text;--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "tier" text;--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "limit_overrides" jsonb DEFAULT '{}'::jsonb NOT NULL;