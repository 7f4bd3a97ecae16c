/**
 * A task's working tree (ARCHITECTURE rule 10). In `worktree` mode each task gets its own git
 * worktree and branch `troupe/<key>` starting at the workspace's current HEAD; its work is
 * committed there, rebased onto the workspace's HEAD and fast-forwarded in under a per-project
 * lock, so the workspace branch gets exactly one linear commit per task. A conflict keeps the
 * branch. In `shared` mode the task writes straight into the workspace.
 */
import { existsSync } from 'node:fs';
import { appendFile, lstat, mkdir, readFile, realpath, symlink } from 'node:fs/promises';
import path from 'node:path';
import { abortReason, git, gitOk, isGitRepo, type GitOptions } from './git.ts';
import { addWorktreeOn, discardWorktree, readProgress, withWorktreeAdmin, writeProgress, type TreeProgress } from './worktree-admin.ts';

export { addWorktreeOn, discardWorktree, withWorktreeAdmin, type TreeProgress };

/** Identifies one task's tree; the same options prepare, commit and remove it. */
export interface TaskTreeOptions {
  /** Absolute project workspace (the main working tree). */
  workspace: string;
  isolation: 'worktree' | 'shared';
  /** Parent of the per-task worktrees, e.g. `<dataDir>/worktrees/<projectId>`. */
  worktreesDir: string;
  /** Task key, `[A-Za-z0-9._-]{1,64}`, usable as a ref name (no leading `.`, no `..`, no `.lock` end). */
  key: string;
  signal?: AbortSignal | undefined;
  /** Base environment for git, normally `config.childEnv`. */
  env?: Record<string, string> | undefined;
}

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
 * `committed`: merged into the workspace's branch (worktree) or committed in place (shared);
 * `files` empty when nothing changed. `conflict`: the task branch keeps the work. `not_git`:
 * shared mode outside git.
 */
export type CommitResult =
  | { status: 'committed'; sha: string; files: string[]; message: string; replayed?: true }
  | { status: 'conflict'; branch: string; detail: string }
  | { status: 'not_git' };

export interface CommitOptions extends TaskTreeOptions {
  message: string;
  /**
   * The only paths committed (relative to the tree): the files the task's answers wrote or
   * deleted, never what a test run left behind. Worktree mode without it commits everything.
   */
  files?: readonly string[] | undefined;
  /** Per-project mutex; every change to the workspace's branch goes through it. */
  lock: <T>(fn: () => Promise<T>) => Promise<T>;
}

/**
 * A task key as one safe ref component and directory name. Every contract key
 * (`[A-Za-z0-9._-]{1,64}`) is accepted; the few git cannot take as a ref (`.x`, `a..b`,
 * `x.lock`, `x.`) are hex-encoded with an `x-` prefix, which no plain key can collide with
 * because plain keys that start with `x-` are encoded too.
 */
export function keySlug(key: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(key)) throw new Error(`invalid task key ${JSON.stringify(key)}`);
  const plain = !key.startsWith('.') && !key.includes('..') && !key.endsWith('.lock') && !key.endsWith('.') && !key.startsWith('x-');
  return plain ? key : `x-${Buffer.from(key, 'utf8').toString('hex')}`;
}

/** The branch a task's work lives on. */
export function taskBranch(key: string): string {
  return `troupe/${keySlug(key)}`;
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
  const treePath = worktreePath(o);
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
  const treePath = worktreePath(o);
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

/** Commits the task's files on its branch in its worktree (worktree mode), leaving the workspace alone. */
async function commitInTree(o: CommitOptions, treePath: string, message: string): Promise<void> {
  const tree = gitOptions(o, treePath);
  if (o.files === undefined) await gitOk(['add', '-A'], tree);
  else await stage(tree, treePath, o.files);
  const staged = await git(['diff', '--cached', '--quiet'], tree);
  if (staged.code === 1) await gitOk(['commit', '-q', '--no-verify', '-m', message], tree);
  else if (staged.code !== 0) throw new Error(`git diff --cached failed in ${treePath}: ${staged.stderr.trim()}`);
}

/**
 * Worktree mode: commits the task's work on its branch and keeps the worktree, without merging
 * (the change waits for a person's review). Returns the branch tip.
 */
export async function commitForReview(o: CommitOptions): Promise<string> {
  const treePath = worktreePath(o);
  const tree = gitOptions(o, treePath);
  await git(['rebase', '--abort'], { ...tree, signal: undefined });
  await commitInTree(o, treePath, o.message.trim() || `troupe: ${o.key}`);
  return (await gitOk(['rev-parse', 'HEAD'], tree)).trim();
}

/** Worktree mode: merges the commit a person approved (rebased and fast-forwarded, under the lock). */
export async function landTaskTree(o: CommitOptions): Promise<CommitResult> {
  const message = o.message.trim() || `troupe: ${o.key}`;
  const treePath = worktreePath(o);
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
  const treePath = worktreePath(o);
  const tree = gitOptions(o, treePath);
  const wsHead = (await gitOk(['rev-parse', 'HEAD'], gitOptions(o, o.workspace))).trim();
  const base = (await gitOk(['merge-base', 'HEAD', wsHead], tree)).trim();
  await gitOk(['reset', '-q', '--mixed', base], tree);
}

/** The task's existing worktree (worktree mode), or null when there is none. */
export async function existingTaskTree(o: TaskTreeOptions): Promise<string | null> {
  if (o.isolation === 'shared') return o.workspace;
  const treePath = worktreePath(o);
  return existsSync(path.join(treePath, '.git')) ? realpath(treePath) : null;
}

/** Stages exactly `files` (present ones added, missing ones removed from the index). */
async function stage(opts: GitOptions, root: string, files: readonly string[]): Promise<void> {
  const unique = [...new Set(files)];
  const present: string[] = [];
  const missing: string[] = [];
  for (const file of unique) ((await exists(path.join(root, file))) ? present : missing).push(file);
  // --literal-pathspecs: a file named `*.js` or `:x` is a name here, not a glob or magic.
  // Ignored files are left out, as `add -A` does (naming one would be an error).
  const ignored = present.length > 0 ? splitZ(await gitOk(['--literal-pathspecs', 'ls-files', '-z', '--others', '--ignored', '--exclude-standard', '--', ...present], opts)) : [];
  const toAdd = present.filter((file) => !ignored.includes(file));
  if (toAdd.length > 0) await gitOk(['--literal-pathspecs', 'add', '-A', '--', ...toAdd], opts);
  if (missing.length > 0) await gitOk(['--literal-pathspecs', 'rm', '--cached', '-q', '--ignore-unmatch', '--', ...missing], opts);
}

/**
 * Worktree mode: commits what the task's answers wrote on its branch, not merged, so a blocked
 * task's work outlives its tree (a later retry keeps it as `troupe/<key>-prev-<n>`). Returns the
 * branch, or null when there is no tree or nothing to keep. Safe to run again.
 */
export async function keepWork(o: TaskTreeOptions, files: readonly string[], message: string): Promise<string | null> {
  if (o.isolation === 'shared' || files.length === 0) return null;
  const treePath = worktreePath(o);
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

/**
 * Whether commit `sha` is the commit made with `message`: compared by subject line, so the body
 * (the model's explanation) may be rebuilt differently after a restart without losing the match.
 */
export async function hasSubject(ws: GitOptions, sha: string, message: string): Promise<boolean> {
  return subjectOf(await gitOk(['log', '-1', '--format=%B', sha], ws)) === subjectOf(message);
}

function subjectOf(message: string): string {
  return (message.trim().split('\n')[0] ?? '').trim();
}

/** Removes the task's worktree directory; its branch stays. No-op in shared mode. */
export async function removeTaskTree(o: TaskTreeOptions): Promise<void> {
  if (o.isolation === 'shared') return;
  await withWorktreeAdmin(o.workspace, () => discardWorktree(gitOptions(o, o.workspace), worktreePath(o)));
}

/**
 * The task's commit when its branch tip is a commit of this task (same message) already on the
 * workspace branch; null otherwise. This is how a step run again after a crash (or by the process
 * that took the run over) recognises a landing that already happened. `replayed` marks it.
 */
export async function landedCommit(o: TaskTreeOptions, message: string): Promise<Extract<CommitResult, { status: 'committed' }> | null> {
  return alreadyMerged(o, message.trim() || `troupe: ${o.key}`);
}

async function alreadyMerged(o: TaskTreeOptions, message: string): Promise<Extract<CommitResult, { status: 'committed' }> | null> {
  const ws = gitOptions(o, o.workspace);
  const tip = await git(['rev-parse', '-q', '--verify', `${taskBranch(o.key)}^{commit}`], ws);
  if (tip.code !== 0) return null;
  const sha = tip.stdout.trim();
  if ((await git(['merge-base', '--is-ancestor', sha, 'HEAD'], ws)).code !== 0) return null;
  if (!(await hasSubject(ws, sha, message))) return null;
  const files = splitZ(await gitOk(['diff-tree', '--no-commit-id', '--name-only', '-r', '-z', sha], ws));
  return { status: 'committed', sha, files, message, replayed: true };
}

/** Rebase onto the workspace's HEAD inside the worktree, then fast-forward the workspace. Runs under the lock. */
async function mergeBack(o: CommitOptions, treePath: string, message: string): Promise<CommitResult> {
  const ws = gitOptions(o, o.workspace);
  const tree = gitOptions(o, treePath);
  const branch = taskBranch(o.key);
  // A detached workspace would take the commit on no branch at all, where it is easy to lose.
  if ((await git(['symbolic-ref', '-q', 'HEAD'], ws)).code !== 0) {
    return { status: 'conflict', branch, detail: 'the workspace HEAD is detached; check out a branch to merge into' };
  }
  const wsHead = (await gitOk(['rev-parse', 'HEAD'], ws)).trim();
  const tip = (await gitOk(['rev-parse', 'HEAD'], tree)).trim();
  if ((await git(['merge-base', '--is-ancestor', tip, wsHead], ws)).code === 0) {
    // Nothing new (the task changed nothing), or merged already by a run before a crash.
    return (await alreadyMerged(o, message)) ?? { status: 'committed', sha: wsHead, files: [], message };
  }
  let rebased = false;
  try {
    const rebase = await git(['rebase', '-q', wsHead], tree);
    if (rebase.code !== 0) {
      const unmerged = await git(['diff', '--name-only', '--diff-filter=U', '-z'], { ...tree, signal: undefined });
      const paths = splitZ(unmerged.stdout);
      const where = paths.length > 0 ? `conflicts in ${paths.join(', ')}` : 'rebase failed';
      const detail = `could not rebase ${branch} onto ${wsHead.slice(0, 12)}: ${where}\n${clip(rebase.stdout + rebase.stderr)}`;
      return { status: 'conflict', branch, detail: detail.trim() };
    }
    rebased = true;
  } finally {
    // Runs on a conflict and on an abort (git killed mid-rebase after its grace period): restores
    // the branch to its original commit and leaves no rebase in progress. A harmless no-op when
    // the rebase had finished. Without the signal, which is already aborted, or it would not run.
    if (!rebased) await git(['rebase', '--abort'], { ...tree, signal: undefined }).catch(() => undefined);
  }
  if (o.signal?.aborted) throw abortReason(o.signal);
  const sha = (await gitOk(['rev-parse', 'HEAD'], tree)).trim();
  // The commit point: deliberately not abortable. Killing a fast-forward half-way through its
  // checkout would leave the user's working tree inconsistent, and it only takes a moment.
  const ff = await git(['merge', '--ff-only', '-q', sha], { ...ws, signal: undefined });
  if (ff.code !== 0) {
    return { status: 'conflict', branch, detail: `could not fast-forward the workspace to ${sha.slice(0, 12)}: ${clip(ff.stderr + ff.stdout)}` };
  }
  const files = splitZ(await gitOk(['diff', '--name-only', '-z', wsHead, sha], { ...ws, signal: undefined }));
  return { status: 'committed', sha, files, message };
}

/** Shared mode: commit only the listed paths, leaving anything else the user staged alone. */
async function commitShared(o: CommitOptions, message: string): Promise<CommitResult> {
  const ws = gitOptions(o, o.workspace);
  if (!(await isGitRepo(o.workspace, ws))) return { status: 'not_git' };
  return o.lock(async () => {
    const head = async () => (await gitOk(['rev-parse', 'HEAD'], ws)).trim();
    const files = [...new Set(o.files ?? [])];
    if (files.length === 0) return { status: 'committed', sha: await head(), files: [], message };
    await stage(ws, o.workspace, files);
    const changed = splitZ(await gitOk(['--literal-pathspecs', 'diff', '--cached', '--name-only', '-z', 'HEAD', '--', ...files], ws));
    if (changed.length === 0) {
      // Committed already, by this step before a crash: the same commit, recognised, not told twice.
      const sha = await head();
      if (await hasSubject(ws, sha, message)) {
        const mine = splitZ(await gitOk(['diff-tree', '--no-commit-id', '--name-only', '-r', '-z', '--root', sha], ws));
        return { status: 'committed', sha, files: mine, message, replayed: true };
      }
      return { status: 'committed', sha, files: [], message };
    }
    await gitOk(['--literal-pathspecs', 'commit', '-q', '--no-verify', '-m', message, '--', ...changed], ws);
    return { status: 'committed', sha: await head(), files: changed, message };
  });
}

/** Keeps unmerged work of an earlier attempt: `troupe/<key>` → `troupe/<key>-prev-<n>`. */
async function keepUnmergedBranch(ws: GitOptions, branch: string, head: string): Promise<void> {
  const has = async (name: string) => (await git(['rev-parse', '-q', '--verify', `refs/heads/${name}`], ws)).code === 0;
  if (!(await has(branch))) return;
  if ((await git(['merge-base', '--is-ancestor', `refs/heads/${branch}`, head], ws)).code === 0) return;
  const older = await previousBranches(ws, branch);
  const n = Math.max(0, ...older.map((b) => Number(b.slice(branch.length + '-prev-'.length)))) + 1;
  await gitOk(['branch', '-m', branch, `${branch}-prev-${n}`], ws);
  // Retention: only the latest unmerged attempt is kept (README "Troubleshooting").
  if (older.length > 0) await git(['branch', '-D', ...older], ws);
}

/** `troupe/<key>-prev-<n>` branches of a task. */
async function previousBranches(ws: GitOptions, branch: string): Promise<string[]> {
  const out = await gitOk(['for-each-ref', '--format=%(refname:lstrip=2)', `refs/heads/${branch}-prev-*`], ws);
  return out.split('\n').filter((b) => new RegExp(`^${branch.replace(/[.]/g, '\\.')}-prev-\\d+$`).test(b));
}

/** Once a task landed, the unmerged work of its earlier attempts is superseded: its `-prev-<n>` branches go. */
async function retireOnLanding(o: TaskTreeOptions, result: CommitResult): Promise<CommitResult> {
  if (result.status !== 'committed' || result.replayed) return result;
  const ws = gitOptions(o, o.workspace);
  const older = await previousBranches(ws, taskBranch(o.key)).catch(() => []);
  if (older.length > 0) await git(['branch', '-D', ...older], { ...ws, signal: undefined }).catch(() => undefined);
  return result;
}

export async function readTreeProgress(o: TaskTreeOptions): Promise<TreeProgress | null> {
  return readProgress(worktreePath(o));
}

export async function writeTreeProgress(o: TaskTreeOptions, progress: TreeProgress): Promise<void> {
  await writeProgress(worktreePath(o), progress);
}

/** Where this process keeps the task's worktree: always under its own `worktreesDir`. */
export function taskTreePath(o: TaskTreeOptions): string {
  return worktreePath(o);
}

function worktreePath(o: TaskTreeOptions): string {
  return path.join(path.resolve(o.worktreesDir), keySlug(o.key));
}

export function gitOptions(o: TaskTreeOptions, cwd: string): GitOptions {
  return { cwd, signal: o.signal, env: o.env };
}

async function exists(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => null)) !== null;
}

function splitZ(out: string): string[] {
  return out.split('\0').filter((s) => s.length > 0);
}

function clip(text: string, max = 2000): string {
  const trimmed = text.trim();
  return trimmed.length > max ? `${trimmed.slice(0, max)}…` : trimmed;
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
