/**
 * Reads of the `events` table the runtime needs beside the event log's own (`events/log.ts`);
 * events are appended only by the outbox (`events/outbox.ts`).
 */
import { and, eq, sql } from 'drizzle-orm';
import type { Queryable } from './client.ts';
import { events } from './schema.ts';

/** Was `commit.created` for this commit of the task told already? */
export async function commitTold(db: Queryable, projectId: string, taskId: string, sha: string): Promise<boolean> {
  const told = await db
    .select({ seq: events.seq })
    .from(events)
    .where(and(eq(events.projectId, projectId), eq(events.taskId, taskId), eq(events.type, 'commit.created'), sql`${events.data}->>'sha' = ${sha}`))
    .limit(1);
  return told.length > 0;
}
