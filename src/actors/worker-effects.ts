/**
 * The worker's effects, built by a factory from their dependencies (STYLE: inject, don't
 * import singletons). Each takes the invoke's AbortSignal and passes it on: to the SDK call,
 * to git, between file writes, to the test process group.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fromPromise } from 'xstate';
import { Fault, coerceError } from '../errors.ts';
import { testsAccepted, type Job } from '../machines/types.ts';
import type {
  ApplyInput,
  ApplyOutput,
  CommitInput,
  CommitOutput,
  CorrectionInput,
  DiscardInput,
  DiscardOutput,
  GiveUpInput,
  LandInput,
  LandOutput,
  PrepareInput,
  PrepareOutput,
  TestInput,
  TestOutput,
} from '../machines/worker.ts';
import { createGenerate, generationKey, type GenerateDeps } from './model/generate.ts';
import { parseProposal } from './model/proposal.ts';
import { FAILURE_OUTPUT_MAX, cutMiddle } from './model/prompts.ts';
import { runTests, type TestRunResult } from './testing/run-tests.ts';
import { attemptDir, discardAttempt, recordAfter, recordBefore, taskChanges, type FileChange } from './workspace/attempts.ts';
import { applyFiles, type AppliedFile } from './workspace/files.ts';
import { refusedWithoutReview, reviewNeeded, type ReviewNeed } from './workspace/review-policy.ts';
import {
  commitForReview,
  commitTaskTree,
  existingTaskTree,
  landTaskTree,
  prepareTaskTree,
  removeTaskTree,
  uncommitTaskTree,
  type TaskTreeOptions,
} from './workspace/task-tree.ts';

/** Who did what, for every event a worker's effects record. */
export interface EffectScope {
  projectId: string;
  runId: string;
  taskId: string;
  agentId: string;
}

export interface CorrectionNote {
  /** Correction number, 1…maxAttempts. */
  attempt: number;
  maxAttempts: number;
  status: 'started' | 'succeeded' | 'failed';
  errorSummary?: string;
}

/** How effects report what they did. Implemented over the database (rows + events) by the runtime. */
export interface WorkerRecorder {
  filesApplied(scope: EffectScope, attempt: number, files: AppliedFile[]): Promise<void>;
  filesRejected(scope: EffectScope, attempt: number, reason: string, path?: string): Promise<void>;
  /** The test run, its `test.result` event and, for a correction whose tests passed, its outcome. */
  testResult(scope: EffectScope, epoch: number, attempt: number, result: TestRunResult, verified: boolean, correction?: CorrectionNote): Promise<void>;
  corrections(scope: EffectScope, epoch: number, notes: CorrectionNote[]): Promise<void>;
  commitCreated(scope: EffectScope, commit: { sha: string; message: string; files: string[] }): Promise<void>;
}

export interface WorkerEffectDeps extends GenerateDeps {
  recorder: WorkerRecorder;
  /** `<dataDir>/worktrees`; each project gets a folder inside. */
  worktreesRoot: string;
  /** Environment of test commands and git: an allowlist without secrets. */
  childEnv: Record<string, string>;
  /** `<dataDir>/attempts`: what each attempt changed (diffs, undoing a rejected attempt, what to commit). */
  attemptsRoot: string;
  /** Directories a sandboxed test command must not see (the data dir). */
  sandboxHide: readonly string[];
  /** Per-project mutex for every change to a workspace's branch. */
  lockProject: (projectId: string) => <T>(fn: () => Promise<T>) => Promise<T>;
}

const scopeOf = (job: Job, agentId: string): EffectScope => ({
  projectId: job.settings.projectId,
  runId: job.settings.runId,
  taskId: job.taskId,
  agentId,
});

function treeOptions(deps: WorkerEffectDeps, job: Job, signal: AbortSignal): TaskTreeOptions {
  return {
    workspace: job.settings.workspace,
    isolation: job.settings.isolation,
    worktreesDir: path.join(deps.worktreesRoot, job.settings.projectId),
    key: job.key,
    signal,
    env: deps.childEnv,
  };
}

/** Where the attempts of a task are kept (see `attempts.ts`). */
export function taskAttemptsDir(attemptsRoot: string, projectId: string, taskId: string): string {
  return path.join(attemptsRoot, projectId, taskId);
}

/** `.git` may be a directory or, in a worktree or submodule, a file. */
async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}

/** Throws a fatal fault when the task's tree is gone: no correction can bring a workspace back. */
async function requireDir(dir: string): Promise<void> {
  const stat = await fs.stat(dir).catch(() => null);
  if (!stat?.isDirectory()) throw new Fault(`workspace missing: ${dir}`, true);
}

const changedFiles = (changes: FileChange[]) => changes.map((c) => ({ path: c.path, existed: c.before !== null, exists: c.after !== null }));

/** Whether the task's change so far needs a person's review (see `review-policy.ts`). */
async function reviewOf(deps: WorkerEffectDeps, job: Job): Promise<ReviewNeed | null> {
  const changes = await taskChanges(taskAttemptsDir(deps.attemptsRoot, job.settings.projectId, job.taskId), job.epoch);
  return reviewNeeded(changedFiles(changes), job.settings.review, job.settings.protectedPaths);
}

export function createWorkerEffects(deps: WorkerEffectDeps) {
  return {
    prepare: fromPromise<PrepareOutput, PrepareInput>(async ({ input, signal }) => {
      await requireDir(input.job.settings.workspace);
      // Shared mode works in the workspace itself: nothing to prepare, no git process to start.
      if (input.job.settings.isolation === 'shared') return { treePath: input.job.settings.workspace };
      if (input.job.mode !== 'work') {
        // Landing or revising a reviewed change: it lives in the task's existing worktree.
        const options = treeOptions(deps, input.job, signal);
        const existing = await existingTaskTree(options);
        if (existing !== null) return { treePath: existing };
        // Landed before a crash that came before its report: `land` recognises the merged branch.
        if (input.job.mode === 'land') return { treePath: options.workspace };
        throw new Fault(`the change under review is gone: no worktree for ${input.job.key}`, true);
      }
      try {
        const tree = await prepareTaskTree(treeOptions(deps, input.job, signal));
        return { treePath: tree.path };
      } catch (e) {
        if (signal.aborted) throw e;
        throw new Fault(`cannot prepare the task's working tree: ${coerceError(e).message}`, true, { cause: e });
      }
    }),

    generate: createGenerate(deps),

    apply: fromPromise<ApplyOutput, ApplyInput>(async ({ input, signal }) => {
      const scope = scopeOf(input.job, input.agentId);
      const message = await deps.journal.find(scope.projectId, input.callKey);
      const proposal = message ? parseProposal(message) : { ok: false as const, reason: 'the recorded answer is missing' };
      if (!proposal.ok) {
        await deps.recorder.filesRejected(scope, input.attempt, proposal.reason);
        return { kind: 'rejected', reason: proposal.reason };
      }
      const record = attemptDir(taskAttemptsDir(deps.attemptsRoot, scope.projectId, scope.taskId), input.job.epoch, input.attempt);
      const { review, protectedPaths } = input.job.settings;
      const result = await applyFiles(input.treePath, proposal.files, {
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
      if (result.ok) await recordAfter(record, input.treePath);
      if (!result.ok) {
        if (result.fatal) throw new Fault(result.reason, true);
        await deps.recorder.filesRejected(scope, input.attempt, result.reason, result.path);
        return { kind: 'rejected', reason: result.path ? `${result.reason} (${result.path})` : result.reason };
      }
      await deps.recorder.filesApplied(scope, input.attempt, result.files);
      return { kind: 'applied', files: result.files.map((f) => f.path) };
    }),

    test: fromPromise<TestOutput, TestInput>(async ({ input, signal }) => {
      const { job } = input;
      await requireDir(input.treePath);
      const result = await runTests({
        argv: job.settings.testCommand,
        cwd: input.treePath,
        env: deps.childEnv,
        timeoutMs: job.settings.testTimeoutMs,
        signal,
        sandbox: { ...job.settings.sandbox, hidePaths: deps.sandboxHide },
      });
      // Verified means the project's own, unmodified test setup passed: not when the task's
      // change touches the files that decide how the tests run (or deletes a test).
      const need = result.status === 'passed' ? await reviewOf(deps, job) : null;
      const verified = result.status === 'passed' && (need === null || need.reason === 'always');
      // A correction whose tests are accepted has succeeded; one that fails is recorded as
      // failed when the next correction starts or the worker gives up.
      const correction: CorrectionNote | undefined =
        input.attempt > 1 && testsAccepted(result.status, input.agentType)
          ? { attempt: input.attempt - 1, maxAttempts: job.settings.maxCorrections, status: 'succeeded' }
          : undefined;
      await deps.recorder.testResult(scopeOf(job, input.agentId), job.epoch, input.attempt, result, verified, correction);
      return { status: result.status, summary: result.summary, excerpt: cutMiddle(result.output, FAILURE_OUTPUT_MAX) };
    }),

    correct: fromPromise<void, CorrectionInput>(async ({ input }) => {
      const max = input.job.settings.maxCorrections;
      const notes: CorrectionNote[] = [];
      if (input.correction > 1) {
        notes.push({ attempt: input.correction - 1, maxAttempts: max, status: 'failed', errorSummary: input.failure.summary });
      }
      notes.push({ attempt: input.correction, maxAttempts: max, status: 'started', errorSummary: input.failure.summary });
      await deps.recorder.corrections(scopeOf(input.job, input.agentId), input.job.epoch, notes);
    }),

    giveUp: fromPromise<void, GiveUpInput>(async ({ input }) => {
      if (input.correction < 1) return;
      await deps.recorder.corrections(scopeOf(input.job, input.agentId), input.job.epoch, [
        { attempt: input.correction, maxAttempts: input.job.settings.maxCorrections, status: 'failed', errorSummary: input.failure.summary },
      ]);
    }),

    commit: fromPromise<CommitOutput, CommitInput>(async ({ input, signal }) => {
      const { job } = input;
      const changes = await taskChanges(taskAttemptsDir(deps.attemptsRoot, job.settings.projectId, job.taskId), job.epoch);
      const need = reviewNeeded(changedFiles(changes), job.settings.review, job.settings.protectedPaths);
      // A plain directory in shared mode has nothing to commit: no git process to start.
      if (!need && job.settings.isolation === 'shared' && !(await exists(path.join(job.settings.workspace, '.git')))) {
        return { kind: 'committed', sha: null, files: input.files };
      }
      const task = await deps.tasks.loadTask(job.taskId);
      const options = treeOptions(deps, job, signal);
      const message = `${task.title} (${job.key})`;
      // Only what the answers wrote or deleted: never artefacts of the test run.
      const files = [...new Set([...changes.map((c) => c.path), ...input.files])];
      if (need) {
        // Worktree mode: committed on the task's branch, merged only on approval. Shared mode:
        // the files are in the workspace already; committed (in git) only on approval.
        if (job.settings.isolation === 'worktree') await commitForReview({ ...options, message, files, lock: deps.lockProject(job.settings.projectId) });
        return { kind: 'review', review: { ...need, attempt: input.attempt, verified: need.reason === 'always' && input.verified } };
      }
      const result = await commitTaskTree({
        ...options,
        message,
        files,
        lock: deps.lockProject(job.settings.projectId),
      });
      if (result.status === 'conflict') {
        await removeTaskTree(options).catch(() => undefined);
        return { kind: 'conflict', detail: `${result.detail} (work kept on branch ${result.branch})` };
      }
      if (result.status === 'not_git') return { kind: 'committed', sha: null, files: input.files };
      await deps.recorder.commitCreated(scopeOf(job, input.agentId), { sha: result.sha, message: result.message, files: result.files });
      await removeTaskTree(options).catch(() => undefined);
      return { kind: 'committed', sha: result.sha, files: result.files };
    }),

    land: fromPromise<LandOutput, LandInput>(async ({ input, signal }) => {
      const { job } = input;
      const options = treeOptions(deps, job, signal);
      const task = await deps.tasks.loadTask(job.taskId);
      const message = `${task.title} (${job.key})`;
      const changes = await taskChanges(taskAttemptsDir(deps.attemptsRoot, job.settings.projectId, job.taskId), job.epoch);
      const commitOptions = { ...options, message, files: changes.map((c) => c.path), lock: deps.lockProject(job.settings.projectId) };
      const result = job.settings.isolation === 'worktree' ? await landTaskTree(commitOptions) : await commitTaskTree(commitOptions);
      if (result.status === 'conflict') {
        await removeTaskTree(options).catch(() => undefined);
        return { kind: 'conflict', detail: `${result.detail} (work kept on branch ${result.branch})` };
      }
      if (result.status === 'not_git') return { kind: 'committed', sha: null, files: changes.map((c) => c.path) };
      await deps.recorder.commitCreated(scopeOf(job, input.agentId), { sha: result.sha, message: result.message, files: result.files });
      await removeTaskTree(options).catch(() => undefined);
      return { kind: 'committed', sha: result.sha, files: result.files };
    }),

    discard: fromPromise<DiscardOutput, DiscardInput>(async ({ input, signal }) => {
      const { job } = input;
      const attempt = job.review?.attempt ?? job.startAttempt;
      if (job.settings.isolation === 'worktree') await uncommitTaskTree(treeOptions(deps, job, signal));
      await discardAttempt(taskAttemptsDir(deps.attemptsRoot, job.settings.projectId, job.taskId), job.epoch, attempt, input.treePath);
      return { callKey: generationKey(job.taskId, job.epoch, attempt) };
    }),
  };
}
