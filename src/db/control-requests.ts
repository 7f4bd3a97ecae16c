/**
 * The `control_requests` table: control requests carried to the process that owns a run, and
 * their answers (see `actors/runtime/control-relay.ts`). Each send and answer NOTIFYs `channel`
 * in its own transaction: a hint, the table is the truth.
 */
import { and, eq, lt, or, sql } from 'drizzle-orm';
import type { Db } from './client.ts';
import { controlRequests } from './schema.ts';

export type ControlRequestRow = typeof controlRequests.$inferSelect;

/** Inserts a request addressed to `owner` and tells it (`req <owner>`). */
export async function insertControlRequest(
  db: Db,
  channel: string,
  values: { id: string; owner: string; projectId: string; runId: string; action: string; args: Record<string, unknown> },
): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.insert(controlRequests).values(values);
    await tx.execute(sql`select pg_notify(${channel}, ${`req ${values.owner}`})`);
  });
}

/** Takes `owner`'s oldest pending request (`pending → taken`, skipping rows another session holds). */
export async function takeControlRequest(db: Db, owner: string): Promise<ControlRequestRow | undefined> {
  const oldest = sql`(select id from control_requests where owner = ${owner} and status = 'pending' order by created_at, id limit 1 for update skip locked)`;
  const [row] = await db.update(controlRequests).set({ status: 'taken' }).where(eq(controlRequests.id, oldest)).returning();
  return row;
}

/** Writes the answer of a taken request (`taken → answered`) and tells its caller (`ans <id>`). */
export async function answerControlRequest(db: Db, channel: string, id: string, answer: { status: number; body: unknown }): Promise<void> {
  await db.transaction(async (tx) => {
    await tx
      .update(controlRequests)
      .set({ status: 'answered', answerStatus: answer.status, answer: answer.body, answeredAt: new Date() })
      .where(and(eq(controlRequests.id, id), eq(controlRequests.status, 'taken')));
    await tx.execute(sql`select pg_notify(${channel}, ${`ans ${id}`})`);
  });
}

/** Answers a request nobody took (`pending → answered`); false when it was taken or answered meanwhile. */
export async function withdrawControlRequest(db: Db, id: string, answer: { status: number; body: unknown }): Promise<boolean> {
  const done = await db
    .update(controlRequests)
    .set({ status: 'answered', answerStatus: answer.status, answer: answer.body, answeredAt: new Date() })
    .where(and(eq(controlRequests.id, id), eq(controlRequests.status, 'pending')))
    .returning({ id: controlRequests.id });
  return done.length > 0;
}

export async function controlRequestById(db: Db, id: string): Promise<ControlRequestRow | undefined> {
  const [row] = await db.select().from(controlRequests).where(eq(controlRequests.id, id));
  return row;
}

/** Removes answered requests older than an hour, and any request older than an hour. */
export async function sweepControlRequests(db: Db): Promise<void> {
  await db
    .delete(controlRequests)
    .where(
      or(
        and(eq(controlRequests.status, 'answered'), lt(controlRequests.answeredAt, sql`now() - interval '1 hour'`)),
        lt(controlRequests.createdAt, sql`now() - interval '1 hour'`),
      ),
    );
}
