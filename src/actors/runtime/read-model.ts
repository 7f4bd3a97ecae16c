/**
 * The read model: what the API shows of a project's runs, actors, usage, event log, task diffs,
 * machines and live inspection. Every method reads (the database, the attempts kept on disk, the
 * leads hosted here); none writes or waits for agent work.
 */
import path from 'node:path';
import type { AnyActorRef } from 'xstate';
import type { Queryable } from '../../db/client.ts';
import { usageByProject, usageGrouped } from '../../db/model-calls.ts';
import { latestRuns, runById, runsOf } from '../../db/runs.ts';
import { actorsWithTaskKeys } from '../../db/snapshots.ts';
import { taskByRef, tasksOf } from '../../db/tasks.ts';
import { notFound } from '../../errors.ts';
import { readEvents } from '../../events/log.ts';
import { machineDefinition, machineVersions } from '../../machines/catalogue.ts';
import { taskAttemptsDir } from '../worker-effects.ts';
import { attemptChanges, taskChanges } from '../workspace/attempts.ts';
import { diffChanges, type FileDiff } from '../workspace/diff.ts';
import type { InspectionHub, InspectionListener } from './inspection.ts';
import type { LeadHost } from './lead-host.ts';
import type { ProjectService } from './projects.ts';
import { sanitize } from './sanitize.ts';
import { actorJson, runJson, usageJson, type RunJson } from './views.ts';

export interface ReadModelOptions {
  db: Queryable;
  projects: ProjectService;
  dataDir: string;
  inspection: InspectionHub;
  /** The lead hosting the project's run here, if any. */
  host: (projectId: string) => LeadHost | undefined;
}

export class ReadModel {
  constructor(private readonly o: ReadModelOptions) {}

  private get db() {
    return this.o.db;
  }

  async listRuns(projectId: string): Promise<RunJson[]> {
    await this.o.projects.row(projectId);
    return (await runsOf(this.db, projectId)).map(runJson);
  }

  async getRun(projectId: string, runId: string): Promise<RunJson> {
    await this.o.projects.row(projectId);
    const row = await runById(this.db, projectId, runId);
    if (!row) throw notFound('run');
    return runJson(row);
  }

  async listActors(projectId: string) {
    await this.o.projects.row(projectId);
    const latest = (await latestRuns(this.db, [projectId])).get(projectId);
    if (!latest) return [];
    return (await actorsWithTaskKeys(this.db, latest.id)).map(({ row, taskKey }) => actorJson(row, taskKey));
  }

  async getActor(projectId: string, actorId: string) {
    await this.o.projects.row(projectId);
    const latest = (await latestRuns(this.db, [projectId])).get(projectId);
    const found = latest ? (await actorsWithTaskKeys(this.db, latest.id, actorId))[0] : undefined;
    if (!found) throw notFound('actor');
    return { ...actorJson(found.row, found.taskKey), snapshot: sanitize(found.row.snapshot) };
  }

  async usage(projectId: string) {
    await this.o.projects.row(projectId);
    const [totals, byTask, byAgent, byModel, taskRows] = await Promise.all([
      usageByProject(this.db, [projectId]),
      usageGrouped(this.db, projectId, 'taskId'),
      usageGrouped(this.db, projectId, 'agentId'),
      usageGrouped(this.db, projectId, 'model'),
      tasksOf(this.db, projectId),
    ]);
    const keyOf = new Map(taskRows.map((t) => [t.id, t.key]));
    return {
      totals: usageJson(totals.get(projectId)),
      byTask: byTask.map((u) => ({ taskId: u.group, key: u.group ? (keyOf.get(u.group) ?? null) : null, ...usageJson(u) })),
      byAgent: byAgent.map((u) => ({ agentId: u.group, ...usageJson(u) })),
      byModel: byModel.map((u) => ({ model: u.group, ...usageJson(u) })),
    };
  }

  /**
   * What the task's kept attempts (of its current retry) changed, against the tree it started
   * from; with `attempt`, what that attempt wrote (also when it was rejected and undone).
   */
  async taskDiff(projectId: string, ref: string, attempt?: number): Promise<FileDiff[]> {
    await this.o.projects.row(projectId);
    const row = await taskByRef(this.db, projectId, ref);
    if (!row) throw notFound('task');
    const root = taskAttemptsDir(path.join(this.o.dataDir, 'attempts'), projectId, row.id);
    if (attempt === undefined) return diffChanges(await taskChanges(root, row.epoch));
    const changes = await attemptChanges(root, row.epoch, attempt);
    if (changes === null) throw notFound(`attempt ${attempt} of task ${row.key}`);
    return diffChanges(changes);
  }

  /** The statecharts the runtime runs, with the version stored beside their snapshots. */
  machines(): { name: string; version: number }[] {
    return machineVersions();
  }

  /** A machine's `toJSON()` definition, or its `stateDiagram-v2` text. */
  machineDefinition(name: string, format: 'json' | 'mermaid'): unknown {
    const definition = machineDefinition(name, format);
    if (definition === undefined) throw notFound('machine');
    return definition;
  }

  /** One page of a project's event log after `since`. */
  async eventLog(projectId: string, since: number, limit: number, types?: readonly string[]) {
    await this.o.projects.row(projectId);
    const events = await readEvents(this.db, { afterSeq: since, projectId, limit, types });
    return { events, next: events.at(-1)?.seq ?? since };
  }

  /** Streams the project's inspection events: its live actors first, then everything they do. */
  async watchInspection(projectId: string, listener: InspectionListener): Promise<() => void> {
    await this.o.projects.row(projectId);
    const host = this.o.host(projectId);
    const live = host ? [host.actor, ...Object.values(host.actor.getSnapshot().children)].filter((a) => a !== undefined) : [];
    return this.o.inspection.watch(projectId, listener, live as AnyActorRef[]);
  }
}
