ALTER TABLE "test_results" ALTER COLUMN "task_id" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "test_results" ALTER COLUMN "passed" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "test_results" ALTER COLUMN "failed" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "test_results" ALTER COLUMN "errors" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "test_results" ALTER COLUMN "skipped" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "test_results" ADD COLUMN "phase" text DEFAULT 'task' NOT NULL;--> statement-breakpoint
ALTER TABLE "test_results" ADD COLUMN "commit" text;--> statement-breakpoint
ALTER TABLE "test_results" ADD COLUMN "summary" text;--> statement-breakpoint
ALTER TABLE "test_results" ADD COLUMN "total" integer;--> statement-breakpoint
ALTER TABLE "test_results" ADD COLUMN "failures" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
CREATE INDEX "test_results_baseline" ON "test_results" USING btree ("project_id","commit") WHERE phase = 'baseline';