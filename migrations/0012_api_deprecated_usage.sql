CREATE TABLE "api_deprecated_usage" (
	"key_id" text NOT NULL,
	"tenant_id" text NOT NULL,
	"route" text NOT NULL,
	"day" date NOT NULL,
	"count" bigint NOT NULL,
	"last_seen" timestamp with time zone NOT NULL,
	CONSTRAINT "api_deprecated_usage_key_id_route_day_pk" PRIMARY KEY("key_id","route","day")
);
--> statement-breakpoint
ALTER TABLE "api_deprecated_usage" ADD CONSTRAINT "api_deprecated_usage_key_id_api_keys_id_fk" FOREIGN KEY ("key_id") REFERENCES "public"."api_keys"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "api_deprecated_usage" ADD CONSTRAINT "api_deprecated_usage_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "api_deprecated_usage_day_idx" ON "api_deprecated_usage" USING btree ("day");