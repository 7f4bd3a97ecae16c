/**
 * Control operations on a project's run, run in the process that executes it (the runtime
 * carries them there first): start, pause, resume, cancel, and a settings change told to its
 * lead. They persist or send an event to the lead, and return; they never wait for agent work.
 */
import type { Db } from '../../db/client.ts';
import { lockProject } from '../../db/projects.ts';
import { insertRun, latestRuns, runById, type RunRow } from '../../db/runs.ts';
import { tasksOf } from '../../db/tasks.ts';
import type { PatchProject } from '../../domain/inputs.ts';
import { conflict, notFound, unprocessable } from '../../errors.ts';
import type { Outbox } from '../../events/outbox.ts';
import { event } from '../../events/types.ts';
import { newId } from '../../ids.ts';
import type { LeadEvent } from '../../machines/lead.ts';
import type { Intent } from '../../machines/lead-logic.ts';
import type { RunStatus } from '../../machines/types.ts';
import { settingsOf } from './lead-input.ts';
import { persistBatch } from './lead-writer.ts';
import type { Leases } from './leases.ts';
import type { ProjectService } from './projects.ts';
import { ACTIVE, type RunHosting } from './run-hosting.ts';
import { runJson, type RunJson } from './views.ts';

export interface RunControlOptions {
  db: Db;
  outbox: Outbox;
  leases: Leases;
  projects: ProjectService;
  hosting: RunHosting;
}

export class RunControl {
  constructor(private readonly o: RunControlOptions) {}

  /** Starts a run (planning first when the project has a goal and no tasks) and hosts its lead here. */
  start(projectId: string): Promise<RunJson> {
    const runId = newId('run');
    // Not an orphan of this process while it is being started.
    return this.o.hosting.reserving(runId, () => this.startAs(projectId, runId));
  }

  private async startAs(projectId: string, runId: string): Promise<RunJson> {
    const { hosting, leases } = this.o;
    const project = await this.o.projects.row(projectId);
    const previous = await hosting.settledHost(projectId);
    // A lead that finished (or is blocked) is superseded by the new run; only an active one blocks it.
    if (previous && ACTIVE.has(previous.runStatus())) throw conflict(`a run is already ${previous.runStatus()}`);
    const { row, plan } = await this.o.outbox.transact(async (tx, emit) => {
      // The project row is locked first, as a delete locks it: a start and a delete never interleave.
      if (!(await lockProject(tx, projectId, 'no key update'))) throw notFound('project');
      const taskRows = await tasksOf(tx, projectId);
      const plan = project.goal !== null && taskRows.length === 0;
      if (!plan && taskRows.length === 0) throw unprocessable('nothing to do: the project has no tasks and no goal');
      if (!plan && !taskRows.some((t) => t.status === 'pending' || t.status === 'in_progress')) {
        throw unprocessable('nothing to do: no pending tasks (retry a failed, blocked or cancelled task first)');
      }
      // No run is active, so nothing can be running: tasks left in progress by a crash go back to the queue.
      const stale = taskRows.filter((t) => t.status === 'in_progress').map<Intent>((t) => ({ type: 'release', taskId: t.id, key: t.key }));
      let row: RunRow;
      try {
        row = await insertRun(tx, { id: runId, projectId, status: plan ? 'planning' : 'running', ...leases.fresh() });
      } catch (e) {
        if (pgCode(e) === '23505') throw conflict('a run is already active for this project');
        throw e;
      }
      emit(event('run.started', { status: row.status as RunStatus }, { projectId, runId }));
      await persistBatch(tx, emit, { projectId, runId, intents: stale });
      return { row, plan };
    });
    if (previous) await hosting.dismiss(projectId, previous);
    await hosting.launch(row, plan ? 'plan' : 'running');
    return runJson(row);
  }

  /** Sends PAUSE, RESUME or CANCEL to the run's lead (`what`: the verb for the 409). */
  async send(projectId: string, e: LeadEvent, what: string): Promise<RunJson> {
    await this.o.projects.row(projectId);
    const host = await this.o.hosting.settledHost(projectId);
    if (!host) {
      await this.o.hosting.assertNotElsewhere(projectId);
      throw conflict(`there is no run to ${what.replace('be cancelled', 'cancel')}`);
    }
    if (!host.can(e)) throw conflict(`the run is ${host.runStatus()}: it cannot ${what}`);
    host.send(e);
    const row = await runById(this.o.db, projectId, host.runId);
    if (!row) throw notFound('run');
    return { ...runJson(row), status: host.runStatus() };
  }

  pause = (projectId: string) => this.send(projectId, { type: 'PAUSE' }, 'pause');
  resume = (projectId: string) => this.send(projectId, { type: 'RESUME' }, 'resume');
  cancel = (projectId: string) => this.send(projectId, { type: 'CANCEL' }, 'be cancelled');

  /** Changes the project and tells its lead the new settings (a blocked run whose budget was raised is launched here for it). */
  async update(id: string, patch: PatchProject) {
    const row = await this.o.projects.patch(id, patch);
    let host = await this.o.hosting.settledHost(id);
    if (!host && patch.config?.budgetUsd !== undefined) {
      const latest = (await latestRuns(this.o.db, [id])).get(id);
      if (latest?.status === 'blocked' && !(await this.o.leases.holder(latest.id))) host = await this.o.hosting.launch(latest, 'blocked');
    }
    if (host) {
      const e: LeadEvent = { type: 'SETTINGS_UPDATED', settings: settingsOf(row) };
      if (host.can(e)) host.send(e);
    }
    return this.o.projects.get(id);
  }

  /** Deletes a project without an active run (checked in the deleting transaction: a start waits for it, or it for the start). */
  async remove(id: string): Promise<void> {
    await this.o.projects.remove(id);
    // A lead left here (a blocked run) belonged to the deleted run: its writes are fenced off already.
    const host = this.o.hosting.host(id);
    if (host && !ACTIVE.has(host.runStatus())) await this.o.hosting.dismiss(id, host);
  }
}

/** The Postgres error code of a (possibly wrapped) driver error. */
export function pgCode(thrown: unknown): string | undefined {
  for (let e: unknown = thrown, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
