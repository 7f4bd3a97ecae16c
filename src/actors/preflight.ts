/**
 * The run's preflight: what must hold before the first paid call of a run, checked in the order a
 * person would fix them, each refusal one sentence naming what to do.
 *
 *  1. The workspace exists.
 *  2. The test command can start there (`resolveTestCommand`: a missing program would otherwise be
 *     "corrected" by paid model calls that cannot fix it).
 *  3. Worktree mode: no uncommitted changes to tracked files. A task lands by fast-forwarding the
 *     workspace's checked-out branch, which would collide with them at the very end ("your local
 *     changes would be overwritten") after every paid call was made. Untracked files are not
 *     touched by a fast-forward of files they do not share; git refuses (and the task says so) when
 *     a task creates a file that is untracked in the workspace.
 *  4. The baseline: the test command on the base tree before any change (sandboxed like every
 *     test run), so tests that already fail are named to the model as not its doing. In worktree
 *     mode it runs in a detached worktree of HEAD and is cached per commit (a later run on the same
 *     commit, with the project unchanged since, reuses it); in shared mode it runs in the
 *     workspace as it is, every run. A baseline that cannot start or times out refuses the run:
 *     every task's tests would do the same.
 */
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { fromPromise } from 'xstate';
import { coerceError } from '../errors.ts';
import type { PreflightInput, PreflightOutput } from '../machines/lead.ts';
import type { Baseline } from '../machines/types.ts';
import { resolveTestCommand } from './testing/resolve-command.ts';
import { runTests, type TestRunResult } from './testing/run-tests.ts';
import { git, gitOk, isGitRepo } from './workspace/git.ts';
import { addWorktreeOn, discardWorktree, linkIgnoredDirs, withWorktreeAdmin } from './workspace/task-tree.ts';

export interface BaselineStore {
  /** A baseline recorded for `commit` of the project since its settings last changed; null when none. */
  cachedBaseline(projectId: string, commit: string): Promise<(Baseline & { result: TestRunResult }) | null>;
  /** Records the baseline run (a `test_results` row, phase `baseline`) and its `test.result` event; `cached`: told again, not stored again. */
  baselineResult(scope: { projectId: string; runId: string }, commit: string | null, result: TestRunResult, cached: boolean): Promise<void>;
}

export interface PreflightDeps {
  store: BaselineStore;
  /** `<dataDir>/worktrees`. */
  worktreesRoot: string;
  childEnv: Record<string, string>;
  sandboxHide: readonly string[];
}

/** Tracked files with uncommitted changes (staged or not) shown at most, by name. */
const DIRTY_NAMED = 10;

export function createPreflight(deps: PreflightDeps) {
  return fromPromise<PreflightOutput, PreflightInput>(async ({ input, signal }) => {
    const s = input.settings;
    const ws = { cwd: s.workspace, env: deps.childEnv, signal };
    if (!(await isDir(s.workspace))) return refused(`the workspace ${s.workspace} does not exist (or is not a directory)`);
    const command = await resolveTestCommand(s.testCommand, s.workspace, deps.childEnv);
    if (!command.ok) return refused(`the test command cannot start: ${command.reason}; fix testCommand (PATCH the project) and start again`);
    let commit: string | null = null;
    if (s.isolation === 'worktree') {
      if (!(await isGitRepo(s.workspace, ws))) return refused(`worktree isolation needs a git repository, and ${s.workspace} is not one`);
      const dirty = await dirtyTrackedFiles(ws);
      if (dirty.length > 0) {
        const named = dirty.slice(0, DIRTY_NAMED).join(', ') + (dirty.length > DIRTY_NAMED ? `, and ${dirty.length - DIRTY_NAMED} more` : '');
        return refused(`the workspace has uncommitted changes to tracked files (${named}): commit or stash them, then start again — a task landing on the branch would collide with them`);
      }
      const head = await git(['rev-parse', '-q', '--verify', 'HEAD^{commit}'], ws);
      // A repository without a commit has no base tree to test: the first task starts from nothing.
      if (head.code !== 0) return { kind: 'ready', baseline: null };
      commit = head.stdout.trim();
      const cached = await deps.store.cachedBaseline(input.projectId, commit);
      if (cached) {
        await deps.store.baselineResult(input, commit, cached.result, true);
        return verdict(cached);
      }
    }
    const result = commit === null ? await runBaseline(deps, input, s.workspace, signal) : await inBaseTree(deps, input, commit, signal);
    await deps.store.baselineResult(input, commit, result, false);
    return verdict(baselineOf(commit, result));
  });
}

function refused(reason: string): PreflightOutput {
  return { kind: 'refused', reason };
}

function verdict(baseline: Baseline): PreflightOutput {
  if (baseline.status === 'error') return refused(`the test command could not run on the base tree before any change: ${baseline.summary}`);
  if (baseline.status === 'timeout') return refused(`the test command ${baseline.summary} on the base tree before any change: raise config.testTimeoutMs, or make the tests faster`);
  return { kind: 'ready', baseline };
}

export function baselineOf(commit: string | null, result: Pick<TestRunResult, 'status' | 'failures' | 'summary'>): Baseline {
  return { commit, status: result.status, failing: result.failures.map((f) => f.name), summary: result.summary };
}

function runBaseline(deps: PreflightDeps, input: PreflightInput, cwd: string, signal: AbortSignal): Promise<TestRunResult> {
  const s = input.settings;
  return runTests({
    argv: s.testCommand,
    cwd,
    env: deps.childEnv,
    timeoutMs: s.testTimeoutMs,
    signal,
    sandbox: { ...s.sandbox, hidePaths: deps.sandboxHide },
  });
}

/** Runs the baseline in a detached worktree of `commit`, removed afterwards. */
async function inBaseTree(deps: PreflightDeps, input: PreflightInput, commit: string, signal: AbortSignal): Promise<TestRunResult> {
  const s = input.settings;
  const ws = { cwd: s.workspace, env: deps.childEnv, signal };
  // A dot-name no task key can take (keys never start with a dot without being encoded).
  const tree = path.join(deps.worktreesRoot, input.projectId, `.baseline-${input.runId}`);
  await mkdir(path.dirname(tree), { recursive: true });
  const options = { workspace: s.workspace, isolation: s.isolation, worktreesDir: path.dirname(tree), key: 'baseline', signal, env: deps.childEnv };
  await withWorktreeAdmin(s.workspace, async () => {
    await discardWorktree(ws, tree);
    await addWorktreeOn(ws, tree, commit, null);
  });
  try {
    await linkIgnoredDirs(options, tree);
    return await runBaseline(deps, input, tree, signal);
  } finally {
    const quiet = { cwd: s.workspace, env: deps.childEnv };
    await withWorktreeAdmin(s.workspace, () => discardWorktree(quiet, tree)).catch(() => undefined);
  }
}

async function dirtyTrackedFiles(ws: { cwd: string; env: Record<string, string>; signal: AbortSignal }): Promise<string[]> {
  const out = await gitOk(['status', '--porcelain=v1', '-z', '--untracked-files=no', '--ignore-submodules=dirty'], ws);
  const names: string[] = [];
  const entries = out.split('\0');
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i] ?? '';
    if (entry.length < 4) continue;
    names.push(entry.slice(3));
    // A rename or copy is followed by its source path.
    if (entry[0] === 'R' || entry[0] === 'C') i++;
  }
  return names;
}

async function isDir(dir: string): Promise<boolean> {
  return stat(dir).then(
    (s) => s.isDirectory(),
    (e: unknown) => {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return false;
      throw coerceError(e);
    },
  );
}
