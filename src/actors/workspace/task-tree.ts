/**
 * A task's working tree (ARCHITECTURE rule 10). In `worktree` mode each task gets its own git
 * worktree and branch `troupe/<key>` starting at the workspace's current HEAD; its work is
 * committed there, rebased onto the workspace's HEAD and fast-forwarded in under a per-project
 * lock, so the workspace branch gets exactly one linear commit per task. A conflict keeps the
 * branch. In `shared` mode the task writes straight into the workspace. This file prepares,
 * commits and removes trees; task-landing.ts brings a commit into the workspace's branch, and
 * task-names.ts holds what both call a task's tree and branch.
 */
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, realpath, symlink } from 'node:fs/promises';
import path from 'node:path';
import { git, gitOk, isGitRepo, type GitOptions } from './git.ts';
import { alreadyMerged, commitInTree, commitShared, keepUnmergedBranch, mergeBack, retireOnLanding, type CommitOptions, type CommitResult } from './task-landing.ts';
import { gitOptions, taskBranch, taskTreePath, type TaskTreeOptions } from './task-names.ts';
import { addWorktreeOn, discardWorktree, readProgress, withWorktreeAdmin, writeProgress, type TreeProgress } from './worktree-admin.ts';

export { addWorktreeOn, discardWorktree, withWorktreeAdmin, type TreeProgress };
// The names and the landing live in their own files; importers keep one module to ask.
export { hasSubject, landedCommit, type CommitOptions, type CommitResult } from './task-landing.ts';
export { gitOptions, keySlug, taskBranch, taskTreePath, type TaskTreeOptions } from './task-names.ts';

/** Where a task works. */
export interface TaskTree {
  /** Where the task's files are written and its tests run. */
  path: string;
  /** `troupe/<key>` in worktree mode; null in shared mode. */
  branch: string | null;
  /** The commit the tree started from; null in shared mode outside git. */
  baseSha: string | null;
}

/**
 * Creates the task's tree. Worktree mode discards a leftover worktree of the same key, keeps an
 * unmerged `troupe/<key>` as `troupe/<key>-prev-<n>`, and starts a fresh branch at HEAD.
 */
export async function prepareTaskTree(o: TaskTreeOptions): Promise<TaskTree> {
  const ws = gitOptions(o, o.workspace);
  if (o.isolation === 'shared') {
    if (!(await isGitRepo(o.workspace, ws))) return { path: o.workspace, branch: null, baseSha: null };
    const head = await git(['rev-parse', '-q', '--verify', 'HEAD^{commit}'], ws);
    return { path: o.workspace, branch: null, baseSha: head.code === 0 ? head.stdout.trim() : null };
  }
  const treePath = taskTreePath(o);
  if (!(await isGitRepo(o.workspace, ws))) throw new Error(`worktree isolation needs a git repository: ${o.workspace}`);
  return withWorktreeAdmin(o.workspace, () => addWorktree(o, ws, treePath));
}

async function addWorktree(o: TaskTreeOptions, ws: GitOptions, treePath: string): Promise<TaskTree> {
  await discardWorktree(ws, treePath);
  const head = (await gitOk(['rev-parse', '--verify', 'HEAD^{commit}'], ws)).trim();
  const branch = taskBranch(o.key);
  await keepUnmergedBranch(ws, branch, head);
  await mkdir(path.dirname(treePath), { recursive: true });
  // -B resets a branch that is already merged (an ancestor of HEAD): nothing on it can be lost.
  await addWorktreeOn(ws, treePath, head, branch);
  await linkIgnoredDirs(o, treePath);
  return { path: await realpath(treePath), branch, baseSha: head };
}

/** Commits the task's work and brings it into the workspace's checked-out branch. */
export async function commitTaskTree(o: CommitOptions): Promise<CommitResult> {
  const message = o.message.trim() || `troupe: ${o.key}`;
  if (o.isolation === 'shared') return commitShared(o, message);
  const treePath = taskTreePath(o);
  if (!existsSync(treePath)) {
    // Run again after a crash that came after the merge and the cleanup: the branch tells.
    const done = await alreadyMerged(o, message);
    if (done) return done;
    throw new Error(`the task's worktree is missing: ${treePath}`);
  }
  const tree = gitOptions(o, treePath);
  // A process killed mid-rebase leaves one in progress: back to the task's own commit first
  // (a no-op, failing harmlessly, when there is none).
  await git(['rebase', '--abort'], { ...tree, signal: undefined });
  await commitInTree(o, treePath, message);
  return retireOnLanding(o, await o.lock(() => mergeBack(o, treePath, message)));
}

/**
 * Worktree mode: commits the task's work on its branch and keeps the worktree, without merging
 * (the change waits for a person's review). Returns the branch tip.
 */
export async function commitForReview(o: CommitOptions): Promise<string> {
  const treePath = taskTreePath(o);
  const tree = gitOptions(o, treePath);
  await git(['rebase', '--abort'], { ...tree, signal: undefined });
  await commitInTree(o, treePath, o.message.trim() || `troupe: ${o.key}`);
  return (await gitOk(['rev-parse', 'HEAD'], tree)).trim();
}

/** Worktree mode: merges the commit a person approved (rebased and fast-forwarded, under the lock). */
export async function landTaskTree(o: CommitOptions): Promise<CommitResult> {
  const message = o.message.trim() || `troupe: ${o.key}`;
  const treePath = taskTreePath(o);
  if (!existsSync(treePath)) {
    const done = await alreadyMerged(o, message);
    if (done) return done;
    throw new Error(`the task's worktree is missing: ${treePath}`);
  }
  return retireOnLanding(o, await o.lock(() => mergeBack(o, treePath, message)));
}

/**
 * Worktree mode: moves the task's branch back to the commit it started from, keeping the files in
 * the worktree (a rejected change is then undone file by file). Safe to run again.
 */
export async function uncommitTaskTree(o: TaskTreeOptions): Promise<void> {
  const treePath = taskTreePath(o);
  const tree = gitOptions(o, treePath);
  const wsHead = (await gitOk(['rev-parse', 'HEAD'], gitOptions(o, o.workspace))).trim();
  const base = (await gitOk(['merge-base', 'HEAD', wsHead], tree)).trim();
  await gitOk(['reset', '-q', '--mixed', base], tree);
}

/** The task's existing worktree (worktree mode), or null when there is none. */
export async function existingTaskTree(o: TaskTreeOptions): Promise<string | null> {
  if (o.isolation === 'shared') return o.workspace;
  const treePath = taskTreePath(o);
  return existsSync(path.join(treePath, '.git')) ? realpath(treePath) : null;
}

/**
 * Worktree mode: commits what the task's answers wrote on its branch, not merged, so a blocked
 * task's work outlives its tree (a later retry keeps it as `troupe/<key>-prev-<n>`). Returns the
 * branch, or null when there is no tree or nothing to keep. Safe to run again.
 */
export async function keepWork(o: TaskTreeOptions, files: readonly string[], message: string): Promise<string | null> {
  if (o.isolation === 'shared' || files.length === 0) return null;
  const treePath = taskTreePath(o);
  if (!existsSync(path.join(treePath, '.git'))) return null;
  const tree = gitOptions(o, treePath);
  // Only a tree on the task's branch: a detached one (rebuilt, not yet attached) is not a branch to keep.
  const on = await git(['symbolic-ref', '-q', '--short', 'HEAD'], tree);
  if (on.code !== 0 || on.stdout.trim() !== taskBranch(o.key)) return null;
  await git(['rebase', '--abort'], { ...tree, signal: undefined });
  await commitInTree({ ...o, message, files, lock: (fn) => fn() }, treePath, message);
  const wsHead = (await gitOk(['rev-parse', 'HEAD'], gitOptions(o, o.workspace))).trim();
  const ahead = Number((await gitOk(['rev-list', '--count', `${wsHead}..HEAD`], tree)).trim());
  return ahead > 0 ? taskBranch(o.key) : null;
}

/** Removes the task's worktree directory; its branch stays. No-op in shared mode. */
export async function removeTaskTree(o: TaskTreeOptions): Promise<void> {
  if (o.isolation === 'shared') return;
  await withWorktreeAdmin(o.workspace, () => discardWorktree(gitOptions(o, o.workspace), taskTreePath(o)));
}

export async function readTreeProgress(o: TaskTreeOptions): Promise<TreeProgress | null> {
  return readProgress(taskTreePath(o));
}

export async function writeTreeProgress(o: TaskTreeOptions, progress: TreeProgress): Promise<void> {
  await writeProgress(taskTreePath(o), progress);
}

/** Installed dependencies the test command needs but git does not carry into a worktree. */
const LINKED_DIRS = ['node_modules'];

/**
 * Links the workspace's `node_modules` (and the like) into a fresh worktree so the project's
 * test command finds its dependencies, and lists them in the repository's `info/exclude` so
 * `git add -A` never commits the link.
 */
export async function linkIgnoredDirs(o: TaskTreeOptions, treePath: string): Promise<void> {
  const present = [];
  for (const name of LINKED_DIRS) {
    const source = path.join(o.workspace, name);
    const target = path.join(treePath, name);
    if (!existsSync(source) || existsSync(target)) continue;
    await symlink(source, target, 'dir');
    present.push(name);
  }
  if (present.length === 0) return;
  const commonDir = (await gitOk(['rev-parse', '--path-format=absolute', '--git-common-dir'], gitOptions(o, o.workspace))).trim();
  const exclude = path.join(commonDir, 'info', 'exclude');
  const current = await readFile(exclude, 'utf8').catch(() => '');
  const missing = present.map((n) => `/${n}`).filter((line) => !current.split('\n').includes(line));
  if (missing.length === 0) return;
  await mkdir(path.dirname(exclude), { recursive: true });
  await appendFile(exclude, `${current === '' || current.endsWith('\n') ? '' : '\n'}# linked into task worktrees by troupe\n${missing.join('\n')}\n`);
}
