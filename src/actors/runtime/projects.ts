/**
 * Projects and tasks: create, change, delete, add tasks (atomically, graph checked) and read
 * them back in the contract's shapes.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { correctionsOf } from '../../db/corrections.ts';
import { usageByProject, usageOfTask } from '../../db/model-calls.ts';
import { allProjects, deleteProject, hasActiveRun, insertProject, lockProject, projectById, updateProject, type ProjectRow } from '../../db/projects.ts';
import { latestRuns } from '../../db/runs.ts';
import { dependencyKeys, statusCounts, taskByRef, tasksOf } from '../../db/tasks.ts';
import { baselineBefore, testResultsOf } from '../../db/test-results.ts';
import { inferAgentType } from '../../domain/agent-type.ts';
import { checkGraph } from '../../domain/graph.ts';
import { fillConfig, normalizeConfig, type CreateProject, type PatchProject, type TaskInput } from '../../domain/inputs.ts';
import { conflict, invalid, notFound, TroupeError, unprocessable } from '../../errors.ts';
import type { Outbox } from '../../events/outbox.ts';
import { newId } from '../../ids.ts';
import { resolveTestCommand } from '../testing/resolve-command.ts';
import { bwrapAvailable } from '../testing/sandbox.ts';
import { isGitRepo } from '../workspace/git.ts';
import { ensureWorkspace } from '../workspace/workspace.ts';
import { insertTasks } from './records.ts';
import { projectJson, taskDetailJson, taskJson, type ProjectJson, type TaskJson } from './views.ts';

export interface ProjectServiceOptions {
  outbox: Outbox;
  dataDir: string;
  /** When set, every workspace must resolve inside it. */
  workspaceRoot?: string | undefined;
  /** `config.sandbox.mode` of projects that do not say (`TROUPE_SANDBOX`). */
  sandboxMode?: 'bwrap' | 'none' | undefined;
  /** The environment test commands run with (`config.childEnv`): a bare program is looked up on its `PATH`. */
  childEnv: Record<string, string>;
}

export class ProjectService {
  constructor(private readonly o: ProjectServiceOptions) {}

  private get db() {
    return this.o.outbox.store.db;
  }

  /**
   * Creates a project. Every check runs first ({@link checkNewProject}), so bad input leaves
   * nothing behind: no directory, no `git init`, no row. Only the default workspace is made.
   */
  async create(input: CreateProject): Promise<ProjectJson> {
    const id = newId('prj');
    const checked = await checkNewProject(input, id, this.o);
    const workspace = await this.prepareWorkspace(checked);
    const config = fillConfig(input.config, workspace.git, undefined, { sandboxMode: this.o.sandboxMode ?? 'bwrap' });
    try {
      await insertProject(this.db, {
        id,
        name: input.name,
        workspace: workspace.path,
        testCommand: input.testCommand,
        goal: input.goal ?? null,
        config: config as unknown as Record<string, unknown>,
      });
    } catch (e) {
      // A default workspace made for a row that was never written would be an orphan.
      if (checked.fresh) await fs.rm(checked.dir, { recursive: true, force: true });
      throw e;
    }
    return this.get(id);
  }

  /** Makes a checked workspace usable: the default one is created and `git init`-ed; an existing unborn repository gets its first commit. */
  private async prepareWorkspace(checked: CheckedProject): Promise<{ path: string; git: boolean }> {
    try {
      return await ensureWorkspace(checked.dir, { create: checked.fresh, env: this.o.childEnv });
    } catch (e) {
      if (checked.fresh) await fs.rm(checked.dir, { recursive: true, force: true });
      throw invalid('cannot use the workspace', [{ path: 'workspace', message: (e as Error).message }]);
    }
  }

  async list(): Promise<ProjectJson[]> {
    const rows = await allProjects(this.db);
    return this.views(rows);
  }

  async get(id: string): Promise<ProjectJson> {
    const row = await this.row(id);
    const [view] = await this.views([row]);
    return view!;
  }

  async row(id: string): Promise<ProjectRow> {
    const row = await projectById(this.db, id);
    if (!row) throw notFound('project');
    return row;
  }

  private async views(rows: ProjectRow[]): Promise<ProjectJson[]> {
    const ids = rows.map((r) => r.id);
    const [counts, usage, latest] = await Promise.all([statusCounts(this.db, ids), usageByProject(this.db, ids), latestRuns(this.db, ids)]);
    return rows.map((r) => projectJson(r, counts.get(r.id), usage.get(r.id), latest.get(r.id)));
  }

  /** Applies a patch; returns the new row (the caller tells a running lead). */
  async patch(id: string, patch: PatchProject): Promise<ProjectRow> {
    const row = await this.row(id);
    const current = normalizeConfig(row.config);
    const isGit = current.isolation === 'worktree' || (await isGitDir(row.workspace));
    if (patch.config?.isolation === 'worktree' && !isGit) {
      throw invalid('isolation "worktree" needs a git workspace', [{ path: 'config.isolation', message: `${row.workspace} is not a git repository` }]);
    }
    const config = patch.config ? fillConfig(patch.config, isGit, current) : current;
    if (config.sandbox.mode !== current.sandbox.mode) await requireSandbox(config.sandbox.mode);
    // Only a command being set is checked: a patch that raises the budget still works on a
    // project whose workspace lost its program (the run's preflight says so at start).
    if (patch.testCommand !== undefined) await requireTestCommand(patch.testCommand, row.workspace, 'present', this.o.childEnv);
    const updated = await updateProject(this.db, id, {
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...(patch.testCommand !== undefined ? { testCommand: patch.testCommand } : {}),
      config: config as unknown as Record<string, unknown>,
    });
    if (!updated) throw notFound('project');
    return updated;
  }

  /**
   * Deletes a project and everything of it, refused (409) while a run is active. The check and
   * the delete are one transaction holding the project row, which a start locks too: a start
   * either commits first (and the delete sees its run) or waits and finds no project.
   */
  async remove(id: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      if (!(await lockProject(tx, id, 'update'))) throw notFound('project');
      if (await hasActiveRun(tx, id)) throw conflict('the project has an active run: cancel it first');
      await deleteProject(tx, id);
    });
    // The copies kept for diffs and undo go with the project (its workspace files stay).
    await fs.rm(path.join(this.o.dataDir, 'attempts', id), { recursive: true, force: true });
  }

  /**
   * Adds tasks atomically: all or none. Dependencies may name tasks of the same request or tasks
   * already in the project; a cycle is refused with its path.
   */
  async addTasks(projectId: string, inputs: TaskInput[], runId: string | null): Promise<TaskJson[]> {
    const created = await this.o.outbox.transact(async (tx, emit) => {
      // Inside a transaction every query goes through `tx`: PGlite has one connection, and a
      // query on `db` would wait for this very transaction to end.
      // Key-share locked: a delete of the project (FOR UPDATE) waits for these tasks, or this
      // finds no project — never a foreign-key error half-way through the insert.
      if (!(await lockProject(tx, projectId, 'key share'))) throw notFound('project');
      const existing = await tasksOf(tx, projectId);
      const deps = await dependencyKeys(tx, projectId);
      const problem = checkGraph(
        inputs.map((t) => ({ key: t.key, dependsOn: t.dependsOn })),
        existing.map((t) => ({ key: t.key, dependsOn: deps.get(t.id) ?? [] })),
      );
      if (problem) throw unprocessable(problem.message, problem);
      const rows = await insertTasks(
        tx,
        emit,
        projectId,
        runId,
        inputs.map((t) => ({
          key: t.key,
          title: t.title,
          description: t.description,
          agentType: t.agentType ?? inferAgentType(t.title, t.description),
          dependsOn: [...new Set(t.dependsOn)],
          priority: t.priority,
        })),
      );
      return rows;
    });
    const deps = await dependencyKeys(this.db, projectId);
    return created.map((r) => taskJson(r, deps.get(r.id) ?? []));
  }

  async tasks(projectId: string): Promise<TaskJson[]> {
    await this.row(projectId);
    const [rows, deps] = await Promise.all([tasksOf(this.db, projectId), dependencyKeys(this.db, projectId)]);
    return rows.map((r) => taskJson(r, deps.get(r.id) ?? []));
  }

  async task(projectId: string, ref: string) {
    await this.row(projectId);
    const row = await taskByRef(this.db, projectId, ref);
    if (!row) throw notFound('task');
    const [deps, results, corrections, usage] = await Promise.all([
      dependencyKeys(this.db, projectId),
      testResultsOf(this.db, row.id),
      correctionsOf(this.db, row.id),
      usageOfTask(this.db, row.id),
    ]);
    const base = await baselineBefore(this.db, projectId, results.at(-1)?.createdAt ?? new Date());
    return taskDetailJson(taskJson(row, deps.get(row.id) ?? []), results, base, corrections, usage);
  }
}

/** What the checks found: where the workspace is, and whether `create` must make it. */
export interface CheckedProject {
  /** Absolute; the real path when it exists. */
  dir: string;
  /** The default workspace, which does not exist yet: created and `git init`-ed after the checks. */
  fresh: boolean;
  /** It is (or, fresh, will be) the top of a git work tree. */
  git: boolean;
}

export type ProjectChecks = Pick<ProjectServiceOptions, 'dataDir' | 'workspaceRoot' | 'sandboxMode' | 'childEnv'> & {
  /**
   * The default workspace is used at once and stays empty until the run starts (`troupe run`):
   * a test program looked up in it cannot be there. Otherwise (the service) a person may fill
   * it between create and start, and such a program is left to the run's preflight.
   */
  defaultStaysEmpty?: boolean | undefined;
};

/**
 * Every check of a create body that needs more than its schema, in the order a person would
 * fix them, and none of them writes anything: the sandbox is available, the workspace is allowed
 * and — when given — exists, worktree isolation has a git repository, and the test command can
 * start. `troupe run` calls this before it creates its database, so a bad plan is refused fast.
 * The default workspace (`<dataDir>/workspaces/<id>`) is new by construction: not looked at.
 * @throws TroupeError (4xx) naming the field.
 */
export async function checkNewProject(input: CreateProject, id: string, o: ProjectChecks): Promise<CheckedProject> {
  await requireSandbox(fillConfig(input.config, false, undefined, { sandboxMode: o.sandboxMode ?? 'bwrap' }).sandbox.mode);
  const given = input.workspace;
  const dir = path.resolve(given ?? path.join(o.dataDir, 'workspaces', id));
  const root = o.workspaceRoot;
  if (root) {
    const realRoot = await fs.realpath(root).catch(() => path.resolve(root));
    const parent = await realParent(dir);
    if (parent !== realRoot && !parent.startsWith(realRoot + path.sep)) {
      const why = given === undefined ? `the default workspace ${dir} is outside ${realRoot}: give a workspace inside it` : `must be inside ${realRoot}`;
      throw invalid('workspace is outside TROUPE_WORKSPACE_ROOT', [{ path: 'workspace', message: why }]);
    }
  }
  if (given === undefined) {
    await requireTestCommand(input.testCommand, dir, o.defaultStaysEmpty ? 'empty' : 'unknown', o.childEnv);
    return { dir, fresh: true, git: true };
  }
  const info = await fs.stat(dir).catch(() => null);
  if (!info) {
    // A typo must not become a new empty repository that paid agents then work in.
    throw unprocessable(`the workspace ${dir} does not exist`, [
      { path: 'workspace', message: `${dir} does not exist: create it first (mkdir -p DIR && git -C DIR init), or leave workspace out for a new git repository` },
    ]);
  }
  if (!info.isDirectory()) throw invalid('workspace is not a directory', [{ path: 'workspace', message: `${dir} is a file` }]);
  const real = await fs.realpath(dir);
  const git = await isGitRepo(real, { env: o.childEnv });
  if (input.config?.isolation === 'worktree' && !git) {
    throw invalid('isolation "worktree" needs a git workspace', [{ path: 'config.isolation', message: `${real} is not a git repository` }]);
  }
  await requireTestCommand(input.testCommand, real, 'present', o.childEnv);
  return { dir: real, fresh: false, git };
}

/**
 * The test command's program must be an executable the run can start (found as `spawn` finds
 * it: a name with a slash against the workspace, a bare name on the child environment's `PATH`),
 * else 422 — four paid calls "correcting" a `command not found` fix nothing. Checked whenever it
 * can be known now, which is always but for one case: a program that only the contents of a
 * workspace not made yet can provide (`contents` `unknown`: a relative path with a slash such as
 * `./run-tests.sh`, or a bare name when `PATH` has relative entries). The run's preflight checks
 * that one before its first model call.
 */
async function requireTestCommand(argv: readonly string[], workspace: string, contents: 'present' | 'unknown' | 'empty', env: Readonly<Record<string, string>>): Promise<void> {
  const program = argv[0] ?? '';
  const inWorkspace = program.includes('/') && !path.isAbsolute(program);
  const relativePathEntry = (env.PATH ?? '').split(path.delimiter).some((d) => d !== '' && !path.isAbsolute(d));
  if (contents === 'unknown' && (inWorkspace || (!program.includes('/') && relativePathEntry))) return;
  // Looked up in a directory that does not exist yet finds what an empty one would: nothing.
  const found = contents === 'empty' && inWorkspace ? { ok: false as const, reason: `command not found: ${program} (the new workspace is empty)` } : await resolveTestCommand(argv, workspace, env);
  if (found.ok) return;
  throw unprocessable(`the test command cannot start: ${found.reason}`, [{ path: 'testCommand', message: `cannot start: ${found.reason}` }]);
}

/** The real path of the nearest existing ancestor of `dir` joined with the rest. */
async function realParent(dir: string): Promise<string> {
  let current = dir;
  const rest: string[] = [];
  for (;;) {
    const real = await fs.realpath(current).catch(() => null);
    if (real) return path.join(real, ...rest.reverse());
    const parent = path.dirname(current);
    if (parent === current) return dir;
    rest.push(path.basename(current));
    current = parent;
  }
}

async function isGitDir(dir: string): Promise<boolean> {
  return fs.stat(path.join(dir, '.git')).then(
    () => true,
    () => false,
  );
}

/** A project that asks for the bwrap sandbox needs a bubblewrap that works here: 422 otherwise. */
async function requireSandbox(mode: 'bwrap' | 'none'): Promise<void> {
  if (mode !== 'bwrap' || (await bwrapAvailable())) return;
  throw new TroupeError(
    'sandbox_unavailable',
    'the test sandbox (bubblewrap) is not available on this machine: install it (apt-get install bubblewrap) or opt out with "config": {"sandbox": {"mode": "none"}} (or TROUPE_SANDBOX=none for every new project)',
    [{ path: 'config.sandbox.mode', message: 'bwrap needs a working bubblewrap (apt-get install bubblewrap); "none" runs tests unconfined' }],
  );
}
