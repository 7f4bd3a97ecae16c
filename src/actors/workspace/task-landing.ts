/**
 * Bringing a task's commit into the workspace's checked-out branch: in worktree mode rebased onto
 * the workspace's HEAD and fast-forwarded under the per-project lock, so the branch gets one linear
 * commit per task (a conflict keeps the task's branch); in shared mode committed in place, only the
 * task's paths. A landing that already happened (a step run again after a crash) is recognised by
 * the commit's subject line; the branches earlier attempts left (`troupe/<key>-prev-<n>`) are kept
 * and retired here.
 */
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { abortReason, git, gitOk, isGitRepo, type GitOptions } from './git.ts';
import { gitOptions, taskBranch, type TaskTreeOptions } from './task-names.ts';

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

/** Commits the task's files on its branch in its worktree (worktree mode), leaving the workspace alone. */
export async function commitInTree(o: CommitOptions, treePath: string, message: string): Promise<void> {
  const tree = gitOptions(o, treePath);
  if (o.files === undefined) await gitOk(['add', '-A'], tree);
  else await stage(tree, treePath, o.files);
  const staged = await git(['diff', '--cached', '--quiet'], tree);
  if (staged.code === 1) await gitOk(['commit', '-q', '--no-verify', ...(await authorOf(o)), '-m', message], tree);
  else if (staged.code !== 0) throw new Error(`git diff --cached failed in ${treePath}: ${staged.stderr.trim()}`);
}

/**
 * `--author` with the workspace's own identity (`user.name` and `user.email` of its repository
 * config; user and system config are never read) when it has both; none otherwise. The committer
 * stays Troupe (git.ts), which a rebase keeps too.
 */
async function authorOf(o: TaskTreeOptions): Promise<string[]> {
  const ws = gitOptions(o, o.workspace);
  // `--local` reads the repository's config file only, not git.ts's `-c user.name=Troupe`.
  // eslint-disable-next-line no-control-regex -- an identity is one line without <>
  const read = async (name: string) => (await git(['config', '--local', '--get', name], ws)).stdout.replace(/[<>\u0000-\u001f\u007f]/g, '').trim();
  const [name, email] = [await read('user.name'), await read('user.email')];
  return name !== '' && email !== '' ? [`--author=${name} <${email}>`] : [];
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
 * Whether commit `sha` is the commit made with `message`: compared by subject line, so the body
 * (the model's explanation) may be rebuilt differently after a restart without losing the match.
 */
export async function hasSubject(ws: GitOptions, sha: string, message: string): Promise<boolean> {
  return subjectOf(await gitOk(['log', '-1', '--format=%B', sha], ws)) === subjectOf(message);
}

function subjectOf(message: string): string {
  return (message.trim().split('\n')[0] ?? '').trim();
}

/**
 * The task's commit when its branch tip is a commit of this task (same message) already on the
 * workspace branch; null otherwise. This is how a step run again after a crash (or by the process
 * that took the run over) recognises a landing that already happened. `replayed` marks it.
 */
export async function landedCommit(o: TaskTreeOptions, message: string): Promise<Extract<CommitResult, { status: 'committed' }> | null> {
  return alreadyMerged(o, message.trim() || `troupe: ${o.key}`);
}

export async function alreadyMerged(o: TaskTreeOptions, message: string): Promise<Extract<CommitResult, { status: 'committed' }> | null> {
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
export async function mergeBack(o: CommitOptions, treePath: string, message: string): Promise<CommitResult> {
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
export async function commitShared(o: CommitOptions, message: string): Promise<CommitResult> {
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
    await gitOk(['--literal-pathspecs', 'commit', '-q', '--no-verify', ...(await authorOf(o)), '-m', message, '--', ...changed], ws);
    return { status: 'committed', sha: await head(), files: changed, message };
  });
}

/** Keeps unmerged work of an earlier attempt: `troupe/<key>` → `troupe/<key>-prev-<n>`. */
export async function keepUnmergedBranch(ws: GitOptions, branch: string, head: string): Promise<void> {
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
export async function retireOnLanding(o: TaskTreeOptions, result: CommitResult): Promise<CommitResult> {
  if (result.status !== 'committed' || result.replayed) return result;
  const ws = gitOptions(o, o.workspace);
  const older = await previousBranches(ws, taskBranch(o.key)).catch(() => []);
  if (older.length > 0) await git(['branch', '-D', ...older], { ...ws, signal: undefined }).catch(() => undefined);
  return result;
}

async function exists(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => null)) !== null;
}

export function splitZ(out: string): string[] {
  return out.split('\0').filter((s) => s.length > 0);
}

function clip(text: string, max = 2000): string {
  const trimmed = text.trim();
  return trimmed.length > max ? `${trimmed.slice(0, max)}…` : trimmed;
}
