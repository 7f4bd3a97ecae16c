/**
 * Rebuilding a task's worktree from what the user's repository keeps (ARCHITECTURE rule 10, issue
 * 11). A worktree lives under the data dir of the process that made it; when the process that
 * continues a task has none (it took the run over from a process with another data dir, or the
 * tree was removed by a landing that a crash kept from being reported), it makes its own from the
 * task branch: detached at the commit the task started from, so the caller can re-apply the
 * recorded answers in order (rebuilding its own attempt records on the way), then attached to the
 * branch again. Nothing under another process's data dir is read or written.
 */
import { realpath } from 'node:fs/promises';
import { git, gitOk } from './git.ts';
import {
  addWorktreeOn,
  discardWorktree,
  gitOptions,
  hasSubject,
  linkIgnoredDirs,
  taskBranch,
  taskTreePath,
  withWorktreeAdmin,
  type TaskTreeOptions,
} from './task-tree.ts';

/** A rebuilt worktree, detached at `base`, before its branch is attached again. */
export interface DetachedTree {
  path: string;
  branch: string;
  /** The commit the task started from. */
  base: string;
  /** Where the task branch points (its own commit when it has one; `base` otherwise). */
  tip: string;
}

/**
 * Makes the task's worktree under this process's `worktreesDir`, detached at the commit the task
 * started from: the parent of the task's own commit when the branch has one (`message` tells), else
 * the merge base of the branch and the workspace's HEAD; HEAD when there is no branch yet.
 */
export async function rebuildTaskTree(o: TaskTreeOptions, message: string): Promise<DetachedTree> {
  const ws = gitOptions(o, o.workspace);
  const treePath = taskTreePath(o);
  const branch = taskBranch(o.key);
  return withWorktreeAdmin(o.workspace, async () => {
    await discardWorktree(ws, treePath);
    const head = (await gitOk(['rev-parse', '--verify', 'HEAD^{commit}'], ws)).trim();
    const found = await git(['rev-parse', '-q', '--verify', `refs/heads/${branch}^{commit}`], ws);
    let tip = head;
    let base = head;
    if (found.code === 0) {
      tip = found.stdout.trim();
      const own = await hasSubject(ws, tip, message.trim() || `troupe: ${o.key}`);
      base = own ? (await gitOk(['rev-parse', `${tip}^`], ws)).trim() : (await gitOk(['merge-base', tip, head], ws)).trim();
    } else {
      await gitOk(['branch', branch, head], ws);
    }
    // Detached: a branch still registered at a dead owner's path does not stand in the way.
    await addWorktreeOn(ws, treePath, base, null);
    await linkIgnoredDirs(o, treePath);
    return { path: await realpath(treePath), branch, base, tip };
  });
}

/**
 * Puts the task branch back on a rebuilt tree. With no commit of its own on the branch (`tip` is
 * `base`) the re-applied files stay as they are, uncommitted, as in the tree that was lost; with
 * one, the tracked files are set to that commit (the re-applied answers wrote the same content).
 */
export async function attachTaskBranch(o: TaskTreeOptions, tree: DetachedTree): Promise<void> {
  const opts = gitOptions(o, tree.path);
  await gitOk(['symbolic-ref', 'HEAD', `refs/heads/${tree.branch}`], opts);
  if (tree.tip !== tree.base) await gitOk(['reset', '-q', '--hard', tree.tip], opts);
}
