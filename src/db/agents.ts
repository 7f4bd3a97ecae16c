/** The `agents` table: the workers a run created and retired. */
import { and, eq, isNull } from 'drizzle-orm';
import type { Queryable, Tx } from './client.ts';
import { agents } from './schema.ts';

/** Records a worker of the run; returns false when it was recorded already (a batch written again). */
export async function insertAgent(tx: Tx, values: { projectId: string; runId: string; agentId: string; agentType: string }): Promise<boolean> {
  const created = await tx
    .insert(agents)
    .values({ ...values, kind: 'worker' })
    .onConflictDoNothing()
    .returning({ agentId: agents.agentId });
  return created.length > 0;
}

/** Marks a worker of the run retired; returns false when it was retired already. */
export async function retireAgent(tx: Tx, runId: string, agentId: string): Promise<boolean> {
  const retired = await tx
    .update(agents)
    .set({ retiredAt: new Date() })
    .where(and(eq(agents.runId, runId), eq(agents.agentId, agentId), isNull(agents.retiredAt)))
    .returning({ agentId: agents.agentId });
  return retired.length > 0;
}

/** The ids of every agent the run ever had. */
export async function agentIdsOfRun(db: Queryable, runId: string): Promise<string[]> {
  const rows = await db.select({ agentId: agents.agentId }).from(agents).where(eq(agents.runId, runId));
  return rows.map((r) => r.agentId);
}
