ALTER TABLE "tasks" ADD COLUMN "review" jsonb;--> statement-breakpoint
ALTER TABLE "test_results" ADD COLUMN "sandbox" text DEFAULT 'none' NOT NULL;