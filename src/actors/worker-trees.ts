/**
 * Where a worker's step finds the task's tree (issue 11: "where a task's tree lives must not depend
 * on which process made it"). In worktree mode it is always this process's own
 * `<dataDir>/worktrees/<project>/<key>`, whatever path the restored machine remembers. When that
 * tree is missing, or is not in the state the step expects (a step run again after a crash, a
 * tree left from before this process lost the run), it is rebuilt from durable state only: the
 * task branch in the user's repository and the answers recorded in the database for the job's
 * epoch, re-applied in order exactly as they were the first time (no model call). Re-applying also
 * rebuilds this data dir's attempt records, which diffs and the review checks read.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Fault } from '../errors.ts';
import type { Job } from '../machines/types.ts';
import { generationKey, type TaskReader } from './model/generate.ts';
import type { ModelJournal } from './model/journal.ts';
import { parseProposal } from './model/proposal.ts';
import { attemptDir, recordAfter, recordBefore } from './workspace/attempts.ts';
import { applyFiles, type ApplyResult } from './workspace/files.ts';
import { refusedWithoutReview } from './workspace/review-policy.ts';
import { attachTaskBranch, rebuildTaskTree } from './workspace/task-tree-rebuild.ts';
import { existingTaskTree, readTreeProgress, writeTreeProgress, type TaskTreeOptions } from './workspace/task-tree.ts';

export interface TreeDeps {
  journal: ModelJournal;
  tasks: TaskReader;
  /** `<dataDir>/attempts` of this process. */
  attemptsRoot: string;
  /** Trees these effects have used since they were made (one set per process life). */
  usedTrees: Set<string>;
}

/** Where the attempts of a task are kept (see `attempts.ts`). */
export function taskAttemptsDir(attemptsRoot: string, projectId: string, taskId: string): string {
  return path.join(attemptsRoot, projectId, taskId);
}

/**
 * The subject of a task's commit, `<title> (<key>)`: how its landed commit is recognised (by
 * subject line: see `hasSubject`).
 */
export async function commitMessage(tasks: TaskReader, job: Job): Promise<string> {
  const task = await tasks.loadTask(job.taskId);
  return `${task.title} (${job.key})`;
}

/** Bounds of the model's words in a commit body: a paragraph per attempt, a page in all. */
const EXPLANATION_IN_COMMIT_MAX = 1_500;
const COMMIT_BODY_MAX = 4_000;

/**
 * The full message of a task's commit: its subject, then the model's explanation of each attempt
 * whose answer is in the change (1…`upto` of the job's epoch, less `skip`), read from the recorded
 * answers. Model output: control characters other than newline and tab are dropped, lengths capped.
 */
export async function commitMessageWithWhy(deps: Pick<TreeDeps, 'journal' | 'tasks'>, job: Job, upto: number, skip: readonly number[] = []): Promise<string> {
  const subject = await commitMessage(deps.tasks, job);
  const said: { attempt: number; text: string }[] = [];
  for (let attempt = 1; attempt <= upto; attempt++) {
    if (skip.includes(attempt)) continue;
    const message = await deps.journal.find(job.settings.projectId, generationKey(job.taskId, job.epoch, attempt));
    const proposal = message ? parseProposal(message) : null;
    if (!proposal?.ok) continue;
    const text = commitText(proposal.explanation, EXPLANATION_IN_COMMIT_MAX);
    if (text !== '' && !said.some((s) => s.text === text)) said.push({ attempt, text });
  }
  if (said.length === 0) return subject;
  const body = said.length === 1 ? said[0]!.text : said.map((s) => `Attempt ${s.attempt}: ${s.text}`).join('\n\n');
  return `${subject}\n\n${commitText(body, COMMIT_BODY_MAX)}`;
}

function commitText(text: string, max: number): string {
  // eslint-disable-next-line no-control-regex -- removing control characters is the point
  const clean = text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '').trim();
  return clean.length > max ? `${clean.slice(0, max - 1).trimEnd()}…` : clean;
}

const isFile = async (p: string) => (await fs.lstat(p).catch(() => null))?.isFile() === true;

/**
 * Applies the recorded answer of one attempt to `tree`, as the `apply` step does (same checks,
 * same attempt records), without reporting anything. `ok: false` with no `fatal`: the answer is
 * missing, not a `write_files` call, or was refused — nothing was written.
 */
export async function applyAnswer(deps: TreeDeps, job: Job, attempt: number, tree: string, signal: AbortSignal): Promise<ApplyResult & { explanation?: string }> {
  const message = await deps.journal.find(job.settings.projectId, generationKey(job.taskId, job.epoch, attempt));
  const proposal = message ? parseProposal(message) : { ok: false as const, reason: 'the recorded answer is missing' };
  if (!proposal.ok) return { ok: false, reason: proposal.reason };
  const record = attemptDir(taskAttemptsDir(deps.attemptsRoot, job.settings.projectId, job.taskId), job.epoch, attempt);
  const { review, protectedPaths } = job.settings;
  const result = await applyFiles(tree, proposal.files, {
    signal,
    beforeCommit: async (planned) => {
      if (review === 'never') {
        const refused = refusedWithoutReview(
          planned.map((p) => ({ path: p.path, existed: p.exists, exists: p.action !== 'delete' })),
          protectedPaths,
        );
        if (refused) return refused;
      }
      await recordBefore(record, planned);
      return null;
    },
  });
  if (!result.ok) return result;
  await recordAfter(record, tree);
  return { ...result, explanation: proposal.explanation };
}

export interface EnsureOptions {
  /** The tree must hold the answers of attempts 1…upto (of `job.epoch`). */
  upto: number;
  /** Attempts a person rejected (undone in the tree): not re-applied. */
  skip?: readonly number[];
}

/**
 * The task's tree for a step, in the state the step expects (see the top of this file). Shared
 * mode: the workspace itself. Throws a fatal fault when the workspace is gone.
 */
export async function ensureTaskTree(deps: TreeDeps, job: Job, options: TaskTreeOptions, want: EnsureOptions, signal: AbortSignal): Promise<string> {
  await requireDir(job.settings.workspace);
  if (options.isolation === 'shared') return job.settings.workspace;
  const existing = await existingTaskTree(options);
  const progress = existing === null ? null : await readTreeProgress(options);
  if (existing !== null && progress?.epoch === job.epoch && progress.attempt === want.upto) {
    await clearStaleIndexLock(deps.usedTrees, existing);
    return existing;
  }
  const rebuilt = await rebuildTaskTree(options, await commitMessage(deps.tasks, job));
  const root = taskAttemptsDir(deps.attemptsRoot, job.settings.projectId, job.taskId);
  for (let attempt = 1; attempt <= want.upto; attempt++) {
    if (want.skip?.includes(attempt) || (await isFile(path.join(attemptDir(root, job.epoch, attempt), 'discarded')))) continue;
    const result = await applyAnswer(deps, job, attempt, rebuilt.path, signal);
    if (!result.ok && result.fatal) throw new Fault(result.reason, true);
  }
  await attachTaskBranch(options, rebuilt);
  await writeTreeProgress(options, { epoch: job.epoch, attempt: want.upto });
  deps.usedTrees.add(rebuilt.path);
  return rebuilt.path;
}

/**
 * A git process killed with the service (`kill -9` during a commit) leaves the tree's
 * `index.lock`, and every later git command in that tree fails. The tree is under this process's
 * own data dir (one process per data dir), so a lock found before this process first used the
 * tree is left by an earlier life: it is removed.
 */
async function clearStaleIndexLock(used: Set<string>, tree: string): Promise<void> {
  if (used.has(tree)) return;
  used.add(tree);
  const pointer = await fs.readFile(path.join(tree, '.git'), 'utf8').catch(() => '');
  const gitdir = /^gitdir: (.+)$/m.exec(pointer)?.[1]?.trim();
  if (gitdir) await fs.rm(path.resolve(tree, gitdir, 'index.lock'), { force: true });
}

/** Notes that the tree now holds attempt `attempt` (applied or refused). */
export async function noteApplied(job: Job, options: TaskTreeOptions, attempt: number): Promise<void> {
  if (options.isolation === 'worktree') await writeTreeProgress(options, { epoch: job.epoch, attempt });
}

/** Throws a fatal fault when the task's tree is gone: no correction can bring a workspace back. */
export async function requireDir(dir: string): Promise<void> {
  const stat = await fs.stat(dir).catch(() => null);
  if (!stat?.isDirectory()) throw new Fault(`workspace missing: ${dir}`, true);
}
