CREATE TABLE "control_requests" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"run_id" text NOT NULL,
	"owner" text NOT NULL,
	"action" text NOT NULL,
	"args" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"answer_status" integer,
	"answer" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"answered_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "events" ADD COLUMN "write_key" text;--> statement-breakpoint
ALTER TABLE "control_requests" ADD CONSTRAINT "control_requests_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "control_requests_owner_status" ON "control_requests" USING btree ("owner","status");--> statement-breakpoint
CREATE UNIQUE INDEX "events_write_key" ON "events" USING btree ("write_key") WHERE write_key is not null;