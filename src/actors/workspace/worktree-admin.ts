/**
 * Administration of a repository's task worktrees: adding one (also when its branch is still
 * registered at a dead owner's path), removing one safely, and the progress note kept beside each
 * tree in this process's data dir. `git worktree` commands are queued per repository.
 */
import { lstat, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createKeyedMutex } from '../keyed-mutex.ts';
import { git, gitOk, type GitOptions } from './git.ts';

/**
 * `git worktree add/remove/prune` are not safe to run at once in one repository: one can read
 * another's half-written `.git/worktrees/<name>` ("failed to read …/commondir") and fail. They
 * are queued per repository in this process (a run is executed by one process).
 */
const worktreeAdmin = createKeyedMutex();

export function withWorktreeAdmin<T>(workspace: string, fn: () => Promise<T>): Promise<T> {
  return worktreeAdmin(path.resolve(workspace))(fn);
}

/**
 * `git worktree add` of `branch` (reset to `commit`, as `-B` does) at `treePath`; detached at
 * `commit` when `branch` is null. A branch still registered as checked out at a path that is gone
 * (a crash) is freed by `worktree prune`. One checked out at a path that still exists belongs to
 * a process that lost the run (this one holds the run's lease, so that owner is dead or fenced
 * off): git refuses to move it even with `--force`, so the tree is added detached and the branch
 * pointed at `commit` with plumbing, leaving that other path untouched.
 */
export async function addWorktreeOn(ws: GitOptions, treePath: string, commit: string, branch: string | null): Promise<void> {
  if (branch === null) {
    await gitOk(['worktree', 'add', '-q', '--detach', treePath, commit], ws);
    return;
  }
  const add = () => git(['worktree', 'add', '-q', '-B', branch, treePath, commit], ws);
  let result = await add();
  if (result.code === 0) return;
  const elsewhere = /already (checked out|used by worktree)|checked out at/;
  if (!elsewhere.test(result.stderr)) throw new Error(`git worktree add failed (exit ${result.code}): ${result.stderr.trim()}`);
  await gitOk(['worktree', 'prune'], ws);
  result = await add();
  if (result.code === 0) return;
  if (!elsewhere.test(result.stderr)) throw new Error(`git worktree add failed (exit ${result.code}): ${result.stderr.trim()}`);
  await gitOk(['worktree', 'add', '-q', '--detach', treePath, commit], ws);
  const tree = { ...ws, cwd: treePath };
  await gitOk(['update-ref', `refs/heads/${branch}`, commit], tree);
  await gitOk(['symbolic-ref', 'HEAD', `refs/heads/${branch}`], tree);
}

/**
 * Removes a worktree left by an earlier attempt or a crash. The directory is deleted only when it
 * looks like a worktree (a `.git` file) or is empty, so a misconfigured `worktreesDir` pointing
 * into real files cannot make this an `rm -rf` of the user's work.
 */
export async function discardWorktree(ws: GitOptions, treePath: string): Promise<void> {
  await git(['worktree', 'remove', '--force', '--force', treePath], ws);
  const marker = await lstat(path.join(treePath, '.git')).catch(() => null);
  if (marker?.isFile() || (await readdir(treePath).catch(() => null))?.length === 0 || (await registeredWorktree(ws, treePath))) {
    await rm(treePath, { recursive: true, force: true });
  } else if (await exists(treePath)) {
    throw new Error(`refusing to remove ${treePath}: it is not a Troupe worktree`);
  }
  await gitOk(['worktree', 'prune'], ws);
  await rm(progressFile(treePath), { force: true });
}

/**
 * Whether git still lists `treePath` as a worktree of the repository: a removal killed half-way
 * (git deletes the files first, the record last) leaves a directory without its `.git` file.
 */
async function registeredWorktree(ws: GitOptions, treePath: string): Promise<boolean> {
  const list = await git(['worktree', 'list', '--porcelain', '-z'], ws);
  if (list.code !== 0) return false;
  const real = path.resolve(treePath);
  return splitZ(list.stdout).some((line) => line === `worktree ${real}`);
}

/**
 * How far a task's worktree got: the epoch and the last attempt whose answer was applied to it
 * (refused or not). Kept beside the tree, in this process's data dir, so a step that expects
 * another state (run again after a crash, or stale from before this process lost the run) knows
 * the tree must be rebuilt rather than patched.
 */
export interface TreeProgress {
  epoch: number;
  attempt: number;
}

const progressFile = (treePath: string) => `${treePath}.applied`;

export async function readProgress(treePath: string): Promise<TreeProgress | null> {
  const text = await readFile(progressFile(treePath), 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    const v = JSON.parse(text) as Partial<TreeProgress>;
    return typeof v.epoch === 'number' && typeof v.attempt === 'number' ? { epoch: v.epoch, attempt: v.attempt } : null;
  } catch {
    return null;
  }
}

export async function writeProgress(treePath: string, progress: TreeProgress): Promise<void> {
  const file = progressFile(treePath);
  await writeFile(`${file}.tmp`, JSON.stringify(progress));
  await rename(`${file}.tmp`, file);
}

async function exists(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => null)) !== null;
}

function splitZ(out: string): string[] {
  return out.split('\0').filter((s) => s.length > 0);
}
