CREATE TABLE "feature_flags" (
	"key" text PRIMARY KEY NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"enabled" boolean DEFAULT false NOT NULL,
	"variants" jsonb NOT NULL,
	"rollout_variant" text NOT NULL,
	"default_variant" text NOT NULL,
	"kill_variant" text NOT NULL,
	"tenants" text[] DEFAULT '{}'::text[] NOT NULL,
	"percentage" integer DEFAULT 0 NOT NULL,
	"disabled_reason" text,
	"updated_by" text NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "fleet_switches" (
	"scope" text NOT NULL,
	"subject" text NOT NULL,
	"intake_off" boolean DEFAULT false NOT NULL,
	"processing_paused" boolean DEFAULT false NOT NULL,
	"reason" text,
	"updated_by" text NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "fleet_switches_scope_subject_pk" PRIMARY KEY("scope","subject")
);
