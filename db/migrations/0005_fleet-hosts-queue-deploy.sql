CREATE TYPE "public"."borg_deploy" AS ENUM('if-missing', 'if-unsupported', 'always', 'never');--> statement-breakpoint
ALTER TYPE "public"."job_state" ADD VALUE 'queued' BEFORE 'running';--> statement-breakpoint
CREATE TABLE "storage_hosts" (
	"name" text PRIMARY KEY NOT NULL,
	"ssh_host" text NOT NULL,
	"ssh_port" integer NOT NULL,
	"max_concurrent_backups" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "repositories" ADD COLUMN "max_concurrent_backups" integer;--> statement-breakpoint
ALTER TABLE "clients" ADD COLUMN "borg_deploy" "borg_deploy" DEFAULT 'if-missing' NOT NULL;--> statement-breakpoint
ALTER TABLE "policies" ADD COLUMN "schedule_jitter_seconds" integer;