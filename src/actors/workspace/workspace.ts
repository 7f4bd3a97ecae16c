/**
 * Project workspace setup: the directory exists, and when it is (or becomes) a git repository it
 * has at least one commit, because worktrees need a commit to start from.
 */
import { mkdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { coerceError } from '../../errors.ts';
import { git, gitOk, isGitRepo } from './git.ts';

export const INITIAL_COMMIT_MESSAGE = 'troupe: initial commit';

/** A workspace that cannot be used; `fatal` because no retry inside a run can fix it. */
export class WorkspaceError extends Error {
  override name = 'WorkspaceError';
  readonly fatal = true;
}

export interface EnsureWorkspaceOptions {
  /** Create the directory (and `git init` it) when missing; otherwise it must already exist. */
  create: boolean;
  /** Base environment for git, normally `config.childEnv`. */
  env?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Resolves `dir` to its absolute real path and makes it usable. With `create`, a missing directory
 * is made and a directory that is not the top of a git work tree gets `git init -b main`.
 * An unborn repository (no commits) gets an empty "troupe: initial commit".
 * @throws WorkspaceError when the directory is missing (and `create` is false) or not a directory.
 */
export async function ensureWorkspace(dir: string, opts: EnsureWorkspaceOptions): Promise<{ path: string; git: boolean }> {
  const absolute = path.resolve(dir);
  if (opts.create) await mkdir(absolute, { recursive: true });
  try {
    const info = await stat(absolute);
    if (!info.isDirectory()) throw new WorkspaceError(`workspace is not a directory: ${absolute}`);
  } catch (thrown) {
    if (thrown instanceof WorkspaceError) throw thrown;
    throw new WorkspaceError(`workspace missing: ${absolute} (${coerceError(thrown).message})`, { cause: thrown });
  }
  const real = await realpath(absolute);
  const gitOpts = { cwd: real, env: opts.env, signal: opts.signal };
  let isRepo = await isGitRepo(real, gitOpts);
  if (!isRepo && opts.create) {
    await gitOk(['init', '-q', '-b', 'main'], gitOpts);
    isRepo = true;
  }
  if (isRepo) await ensureInitialCommit(gitOpts);
  return { path: real, git: isRepo };
}

/**
 * Gives an unborn HEAD a first commit with an empty tree. Built with plumbing instead of
 * `git commit --allow-empty`, which would sweep in whatever the user had already staged.
 */
async function ensureInitialCommit(opts: { cwd: string; env?: Record<string, string> | undefined; signal?: AbortSignal | undefined }): Promise<void> {
  const head = await git(['rev-parse', '-q', '--verify', 'HEAD^{commit}'], opts);
  if (head.code === 0) return;
  // Hashing /dev/null as a tree yields the empty tree in either object format (SHA-1 or SHA-256).
  const tree = (await gitOk(['hash-object', '-t', 'tree', '-w', '/dev/null'], opts)).trim();
  const commit = (await gitOk(['commit-tree', tree, '-m', INITIAL_COMMIT_MESSAGE], opts)).trim();
  // The empty old value makes this fail instead of overwriting if a commit appeared meanwhile.
  const update = await git(['update-ref', '-m', INITIAL_COMMIT_MESSAGE, 'HEAD', commit, ''], opts);
  if (update.code !== 0 && (await git(['rev-parse', '-q', '--verify', 'HEAD^{commit}'], opts)).code !== 0) {
    throw new Error(`could not create the initial commit: ${update.stderr.trim()}`);
  }
}
