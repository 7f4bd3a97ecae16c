/**
 * What a task's tree and branch are called, and the options that identify them: what
 * task-tree.ts (preparing, committing, removing trees) and task-landing.ts (bringing a commit into
 * the workspace's branch) share.
 */
import path from 'node:path';
import type { GitOptions } from './git.ts';

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

/** Where this process keeps the task's worktree: always under its own `worktreesDir`. */
export function taskTreePath(o: TaskTreeOptions): string {
  return path.join(path.resolve(o.worktreesDir), keySlug(o.key));
}

export function gitOptions(o: TaskTreeOptions, cwd: string): GitOptions {
  return { cwd, signal: o.signal, env: o.env };
}
