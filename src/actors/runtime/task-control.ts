/**
 * Control operations on one task, run in the process that executes the project's run (the
 * runtime carries them there first): retry, a review decision, cancel. Each goes to the lead as
 * an event and answers once the lead's write of it committed; with no lead to take it, the same
 * pure decision (`lead-logic.ts`) is written directly, guarded like the lead's own batches.
 */
import type { Db } from '../../db/client.ts';
import { latestRuns } from '../../db/runs.ts';
import { dependencyKeys, taskByRef, tasksOf } from '../../db/tasks.ts';
import { conflict, notFound } from '../../errors.ts';
import type { Outbox } from '../../events/outbox.ts';
import type { LeadEvent } from '../../machines/lead.ts';
import { decideReview, requeue } from '../../machines/lead-logic.ts';
import type { LeadHost } from './lead-host.ts';
import { persistBatch } from './lead-writer.ts';
import type { Leases } from './leases.ts';
import type { ProjectService } from './projects.ts';
import type { RunHosting } from './run-hosting.ts';
import { taskJson, taskViewOf, type TaskJson } from './views.ts';

export interface TaskControlOptions {
  db: Db;
  outbox: Outbox;
  leases: Leases;
  projects: ProjectService;
  hosting: RunHosting;
}

export class TaskControl {
  constructor(private readonly o: TaskControlOptions) {}

  /** The lead to tell: the one hosted here, or a blocked run's, launched here for it. */
  private async leadFor(projectId: string): Promise<LeadHost | undefined> {
    const host = await this.o.hosting.settledHost(projectId);
    if (host) return host;
    await this.o.hosting.assertNotElsewhere(projectId);
    const latest = (await latestRuns(this.o.db, [projectId])).get(projectId);
    return latest?.status === 'blocked' ? this.o.hosting.launch(latest, 'blocked') : undefined;
  }

  /** Re-queues a failed, blocked or cancelled task and the tasks blocked behind it. */
  async retry(projectId: string, ref: string, guidance?: string): Promise<TaskJson> {
    await this.o.projects.row(projectId);
    const row = await taskByRef(this.o.db, projectId, ref);
    if (!row) throw notFound('task');
    if (!['failed', 'blocked', 'cancelled'].includes(row.status)) {
      throw conflict(`task ${row.key} is ${row.status}: only failed, blocked or cancelled tasks can be retried`);
    }
    const host = await this.leadFor(projectId);
    const e: LeadEvent = { type: 'RETRY', key: row.key, guidance: guidance ?? null };
    if (host?.can(e)) {
      // Answered with the task as the retry left it: once the lead's write of it committed.
      await host.sendAndPersist(e);
    } else if (host) {
      throw conflict(`the run is ${host.runStatus()}: it cannot take a retry now`);
    } else {
      await this.requeueWithoutRun(projectId, row.key, guidance);
    }
    return this.taskJson(projectId, row.id);
  }

  /** A person's decision about a task in `review` (see `Runtime.reviewTask`). */
  async review(projectId: string, ref: string, decision: 'approved' | 'rejected', guidance?: string): Promise<TaskJson> {
    await this.o.projects.row(projectId);
    const row = await taskByRef(this.o.db, projectId, ref);
    if (!row) throw notFound('task');
    const verb = decision === 'approved' ? 'approved' : 'rejected';
    if (row.status !== 'review' || !row.review) throw conflict(`task ${row.key} is ${row.status}: only a task in review can be ${verb}`);
    const host = await this.leadFor(projectId);
    const e: LeadEvent = { type: 'REVIEW', key: row.key, decision, guidance: guidance ?? null };
    if (host?.can(e)) {
      await host.sendAndPersist(e);
    } else if (host) {
      throw conflict(`the run is ${host.runStatus()}: it cannot take a review decision now`);
    } else {
      await this.o.outbox.transact(async (tx, emit) => {
        const deps = await dependencyKeys(tx, projectId);
        const { intents } = decideReview({ [row.key]: taskViewOf(row, deps.get(row.id) ?? []) }, row.key, decision, guidance ?? null);
        await persistBatch(tx, emit, { projectId, runId: '', intents });
      });
    }
    return this.taskJson(projectId, row.id);
  }

  /** Aborts the task's in-flight work; the task ends `cancelled` and nothing writes it back. */
  async cancel(projectId: string, ref: string): Promise<TaskJson> {
    await this.o.projects.row(projectId);
    const row = await taskByRef(this.o.db, projectId, ref);
    if (!row) throw notFound('task');
    if (row.status !== 'pending' && row.status !== 'in_progress' && row.status !== 'review') throw conflict(`task ${row.key} is ${row.status}: it cannot be cancelled`);
    const host = await this.o.hosting.settledHost(projectId);
    const e: LeadEvent = { type: 'CANCEL_TASK', key: row.key };
    if (host?.can(e)) {
      // The lead's context says cancelled at once (a late report changes nothing); the row once written.
      await host.sendAndPersist(e);
      return this.taskJson(projectId, row.id);
    }
    if (host && host.runStatus() !== 'blocked') throw conflict(`the run is ${host.runStatus()}: it cannot cancel a task now`);
    if (!host) await this.o.hosting.assertNotElsewhere(projectId);
    // No live lead owns the task: cancel it directly (guarded; fenced when a blocked lead of this process owns the run).
    await this.o.outbox.transact(async (tx, emit) => {
      if (host) await this.o.leases.fence(tx, host.runId);
      return persistBatch(tx, emit, { projectId, runId: host?.runId ?? '', intents: [{ type: 'cancel', taskId: row.id, key: row.key }] });
    });
    return this.taskJson(projectId, row.id);
  }

  private async taskJson(projectId: string, taskId: string): Promise<TaskJson> {
    const row = await taskByRef(this.o.db, projectId, taskId);
    if (!row) throw notFound('task');
    const deps = await dependencyKeys(this.o.db, projectId);
    return taskJson(row, deps.get(row.id) ?? []);
  }

  private async requeueWithoutRun(projectId: string, key: string, guidance: string | undefined): Promise<void> {
    await this.o.outbox.transact(async (tx, emit) => {
      const rows = await tasksOf(tx, projectId);
      const deps = await dependencyKeys(tx, projectId);
      const views = Object.fromEntries(rows.map((r) => [r.key, taskViewOf(r, deps.get(r.id) ?? [])]));
      const { intents } = requeue(views, key, guidance ?? null);
      await persistBatch(tx, emit, { projectId, runId: '', intents });
    });
  }
}
