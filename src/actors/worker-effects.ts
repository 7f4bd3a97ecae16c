/**
 * The worker's effects, built by a factory from their dependencies (injected: they never
 * import singletons). Each takes the invoke's AbortSignal and passes it on: to the SDK call,
 * to git, between file writes, to the test process group.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fromPromise } from 'xstate';
import { Fault, coerceError } from '../errors.ts';
import type { TestPhase } from '../events/types.ts';
import { testsAccepted, type Job } from '../machines/types.ts';
import type {
  ApplyInput,
  ApplyOutput,
  CommitInput,
  CommitOutput,
  CorrectionInput,
  DiscardInput,
  DiscardOutput,
  GenerateInput,
  GenerateOutput,
  GiveUpInput,
  GiveUpOutput,
  LandInput,
  LandOutput,
  PrepareInput,
  PrepareOutput,
  ReleaseInput,
  TestInput,
  TestOutput,
} from '../machines/worker.ts';
import { generateAnswer, generationKey, type GenerateDeps } from './model/generate.ts';
import { FAILURE_OUTPUT_MAX, cutMiddle } from './model/prompts.ts';
import { describeTestRun, preexistingFailures } from './testing/describe.ts';
import { runTests, type TestRunResult } from './testing/run-tests.ts';
import { discardAttempt, taskChanges, type FileChange } from './workspace/attempts.ts';
import type { AppliedFile } from './workspace/files.ts';
import { reviewNeeded, type ReviewNeed } from './workspace/review-policy.ts';
import {
  commitForReview,
  commitTaskTree,
  landTaskTree,
  prepareTaskTree,
  readTreeProgress,
  keepWork,
  removeTaskTree,
  uncommitTaskTree,
  writeTreeProgress,
  type CommitResult,
  type TaskTreeOptions,
} from './workspace/task-tree.ts';
import { applyAnswer, commitMessageWithWhy, ensureTaskTree, noteApplied, requireDir, taskAttemptsDir, type EnsureOptions } from './worker-trees.ts';

export { taskAttemptsDir };

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
  filesApplied(scope: EffectScope, attempt: number, files: AppliedFile[], explanation: string): Promise<void>;
  filesRejected(scope: EffectScope, attempt: number, reason: string, path?: string): Promise<void>;
  /** The test run, its `test.result` event and, for a correction whose tests passed, its outcome. */
  testResult(scope: EffectScope, epoch: number, attempt: number, result: TestRunResult, verified: boolean, correction?: CorrectionNote, phase?: TestPhase): Promise<void>;
  corrections(scope: EffectScope, epoch: number, notes: CorrectionNote[]): Promise<void>;
  /** Reports the task's commit; a second report of the same commit (a landing replayed after a crash) is a no-op. */
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

/** `.git` may be a directory or, in a worktree or submodule, a file. */
async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}

const changedFiles = (changes: FileChange[]) => changes.map((c) => ({ path: c.path, existed: c.before !== null, exists: c.after !== null }));

/** Whether the task's change so far needs a person's review (see `review-policy.ts`). */
async function reviewOf(deps: WorkerEffectDeps, job: Job): Promise<ReviewNeed | null> {
  const changes = await taskChanges(taskAttemptsDir(deps.attemptsRoot, job.settings.projectId, job.taskId), job.epoch);
  return reviewNeeded(changedFiles(changes), job.settings.review, job.settings.protectedPaths);
}

/**
 * The attempts a tree must hold for a step of `job` whose own attempt is `attempt` (`applied`: that
 * attempt's answer is in the tree by now). After a person rejected an attempt, it stays undone.
 */
function wanted(job: Job, attempt: number, applied: boolean): EnsureOptions {
  const rejected = job.mode === 'revise' && job.review ? [job.review.attempt] : [];
  return { upto: applied ? attempt : attempt - 1, skip: rejected };
}

/** Worktree mode: the last attempt's files as a commit on the task's branch, not merged. */
async function keepLastAttempt(deps: WorkerEffectDeps, input: GiveUpInput, options: TaskTreeOptions): Promise<GiveUpOutput> {
  const { job } = input;
  const attempts = input.correction + 1;
  const changes = await taskChanges(taskAttemptsDir(deps.attemptsRoot, job.settings.projectId, job.taskId), job.epoch);
  const subject = `troupe: work in progress on ${job.key}, not merged (${attempts} attempt(s) failed)`;
  const why = await commitMessageWithWhy(deps, job, attempts, wanted(job, attempts, true).skip);
  const message = `${subject}\n\n${why}\n\nLast failure: ${input.failure.summary}`;
  return { keptOn: await keepWork(options, changes.map((c) => c.path), message) };
}

/** Landed: the `-prev-<n>` branches are gone, the tree is removed (its branch stays, for recovery). */
async function afterLanding(deps: WorkerEffectDeps, job: Job, agentId: string, options: TaskTreeOptions, result: Extract<CommitResult, { status: 'committed' }>) {
  // A landing recognised after a crash may have been reported before it, or not (a crash between
  // the fast-forward and the event): the recorder reports a task's commit once either way.
  await deps.recorder.commitCreated(scopeOf(job, agentId), { sha: result.sha, message: result.message, files: result.files });
  await removeTaskTree(options).catch(() => undefined);
}

/** Advances the tree's progress past attempt `attempt`, which wrote nothing, when it is right before it. */
async function skipUnapplied(options: TaskTreeOptions, job: Job, attempt: number): Promise<void> {
  if (options.isolation !== 'worktree') return;
  const progress = await readTreeProgress(options);
  if (progress?.epoch === job.epoch && progress.attempt === attempt - 1) await writeTreeProgress(options, { epoch: job.epoch, attempt });
}

export function createWorkerEffects(deps: WorkerEffectDeps) {
  const trees = { ...deps, usedTrees: new Set<string>() };
  const ensure = (job: Job, want: EnsureOptions, signal: AbortSignal) => ensureTaskTree(trees, job, treeOptions(deps, job, signal), want, signal);
  return {
    prepare: fromPromise<PrepareOutput, PrepareInput>(async ({ input, signal }) => {
      const { job } = input;
      await requireDir(job.settings.workspace);
      // Shared mode works in the workspace itself: nothing to prepare, no git process to start.
      if (job.settings.isolation === 'shared') return { treePath: job.settings.workspace };
      try {
        // Landing or revising a reviewed change, or continuing a rebuilt run: the tree holds the
        // attempts so far (rebuilt from the branch and the recorded answers when it is not here).
        if (job.mode !== 'work') return { treePath: await ensure(job, { upto: job.review?.attempt ?? job.startAttempt }, signal) };
        if (job.startAttempt > 1) return { treePath: await ensure(job, wanted(job, job.startAttempt, false), signal) };
        const options = treeOptions(deps, job, signal);
        const tree = await prepareTaskTree(options);
        await writeTreeProgress(options, { epoch: job.epoch, attempt: 0 });
        return { treePath: tree.path };
      } catch (e) {
        if (signal.aborted || (e instanceof Fault && e.fatal)) throw e;
        throw new Fault(`cannot prepare the task's working tree: ${coerceError(e).message}`, true, { cause: e });
      }
    }),

    generate: fromPromise<GenerateOutput, GenerateInput>(async ({ input, signal }) => {
      // The workspace view in the prompt comes from this process's own tree, never another's.
      const treePath = await ensure(input.job, wanted(input.job, input.attempt, false), signal);
      return generateAnswer(deps, { ...input, treePath }, signal);
    }),

    apply: fromPromise<ApplyOutput, ApplyInput>(async ({ input, signal }) => {
      const scope = scopeOf(input.job, input.agentId);
      const options = treeOptions(deps, input.job, signal);
      const treePath = await ensure(input.job, wanted(input.job, input.attempt, false), signal);
      const result = await applyAnswer(trees, input.job, input.attempt, treePath, signal);
      if (!result.ok && result.fatal) throw new Fault(result.reason, true);
      await noteApplied(input.job, options, input.attempt);
      if (!result.ok) {
        await deps.recorder.filesRejected(scope, input.attempt, result.reason, result.path);
        return { kind: 'rejected', reason: result.path ? `${result.reason} (${result.path})` : result.reason };
      }
      await deps.recorder.filesApplied(scope, input.attempt, result.files, result.explanation ?? '');
      return { kind: 'applied', files: result.files.map((f) => f.path) };
    }),

    test: fromPromise<TestOutput, TestInput>(async ({ input, signal }) => {
      const { job } = input;
      const treePath = await ensure(job, wanted(job, input.attempt, true), signal);
      const result = await runTests({
        argv: job.settings.testCommand,
        cwd: treePath,
        env: deps.childEnv,
        timeoutMs: job.settings.testTimeoutMs,
        signal,
        sandbox: { ...job.settings.sandbox, hidePaths: deps.sandboxHide },
      });
      // Verified means the project's own, unmodified test setup passed: not when the task's
      // change touches the files that decide how the tests run (or deletes a test).
      const need = result.status === 'passed' ? await reviewOf(deps, job) : null;
      const verified = result.status === 'passed' && (need === null || need.reason === 'always');
      // A correction whose tests are accepted (or fail only where the base tree already failed)
      // has succeeded; one that fails is recorded as failed when the next correction starts or
      // the worker gives up.
      const preexisting = preexistingFailures(result, job.settings.baseline);
      const accepted = testsAccepted(result.status, input.agentType) || preexisting.length > 0;
      const correction: CorrectionNote | undefined =
        input.attempt > 1 && accepted ? { attempt: input.attempt - 1, maxAttempts: job.settings.maxCorrections, status: 'succeeded' } : undefined;
      await deps.recorder.testResult(scopeOf(job, input.agentId), job.epoch, input.attempt, result, verified, correction);
      return {
        status: result.status,
        summary: describeTestRun(result),
        excerpt: cutMiddle(result.output, FAILURE_OUTPUT_MAX),
        ...(preexisting.length > 0 ? { preexisting } : {}),
      };
    }),

    correct: fromPromise<void, CorrectionInput>(async ({ input }) => {
      const max = input.job.settings.maxCorrections;
      const notes: CorrectionNote[] = [];
      if (input.correction > 1) {
        notes.push({ attempt: input.correction - 1, maxAttempts: max, status: 'failed', errorSummary: input.failure.summary });
      }
      notes.push({ attempt: input.correction, maxAttempts: max, status: 'started', errorSummary: input.failure.summary });
      await deps.recorder.corrections(scopeOf(input.job, input.agentId), input.job.epoch, notes);
      // An attempt whose answer never reached the tree (invalid, or no answer) leaves it as it was.
      if (input.failure.kind === 'invalid_answer' || input.failure.kind === 'model_error') {
        await skipUnapplied(treeOptions(deps, input.job, new AbortController().signal), input.job, input.correction);
      }
    }),

    giveUp: fromPromise<GiveUpOutput, GiveUpInput>(async ({ input }) => {
      if (input.correction >= 1) {
        await deps.recorder.corrections(scopeOf(input.job, input.agentId), input.job.epoch, [
          { attempt: input.correction, maxAttempts: input.job.settings.maxCorrections, status: 'failed', errorSummary: input.failure.summary },
        ]);
      }
      const { job } = input;
      const options = treeOptions(deps, job, new AbortController().signal);
      // The task is blocked: its last attempt's work is kept as a commit on its branch (worktree
      // mode; in shared mode the files are in the workspace already), then nothing more happens in
      // its tree (a retry starts a fresh one and keeps that commit as `-prev-<n>`).
      // Keeping the work must not turn a blocked task into a failed one: a failure is told instead.
      const kept = job.settings.isolation === 'worktree' ? await keepLastAttempt(deps, input, options).catch((e: unknown) => ({ keptOn: null, keepError: coerceError(e).message })) : { keptOn: null };
      await removeTaskTree(options).catch(() => undefined);
      return kept;
    }),

    /** A cancelled task's tree goes (its branch stays). Not abortable: it only takes a moment. */
    release: fromPromise<void, ReleaseInput>(async ({ input }) => {
      await removeTaskTree(treeOptions(deps, input.job, new AbortController().signal)).catch(() => undefined);
    }),

    commit: fromPromise<CommitOutput, CommitInput>(async ({ input, signal }) => {
      const { job } = input;
      const changes = await taskChanges(taskAttemptsDir(deps.attemptsRoot, job.settings.projectId, job.taskId), job.epoch);
      const need = reviewNeeded(changedFiles(changes), job.settings.review, job.settings.protectedPaths);
      // A plain directory in shared mode has nothing to commit: no git process to start.
      if (!need && job.settings.isolation === 'shared' && !(await exists(path.join(job.settings.workspace, '.git')))) {
        return { kind: 'committed', sha: null, files: input.files };
      }
      const options = treeOptions(deps, job, signal);
      await ensure(job, wanted(job, input.attempt, true), signal);
      const message = await commitMessageWithWhy(trees, job, input.attempt, wanted(job, input.attempt, true).skip);
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
      await afterLanding(deps, job, input.agentId, options, result);
      return { kind: 'committed', sha: result.sha, files: result.files };
    }),

    land: fromPromise<LandOutput, LandInput>(async ({ input, signal }) => {
      const { job } = input;
      const options = treeOptions(deps, job, signal);
      if (job.settings.isolation === 'worktree') await ensure(job, { upto: job.review?.attempt ?? job.startAttempt }, signal);
      const landing = job.review?.attempt ?? job.startAttempt;
      const message = await commitMessageWithWhy(trees, job, landing, wanted(job, landing, true).skip);
      const changes = await taskChanges(taskAttemptsDir(deps.attemptsRoot, job.settings.projectId, job.taskId), job.epoch);
      const commitOptions = { ...options, message, files: changes.map((c) => c.path), lock: deps.lockProject(job.settings.projectId) };
      const result = job.settings.isolation === 'worktree' ? await landTaskTree(commitOptions) : await commitTaskTree(commitOptions);
      if (result.status === 'conflict') {
        await removeTaskTree(options).catch(() => undefined);
        return { kind: 'conflict', detail: `${result.detail} (work kept on branch ${result.branch})` };
      }
      if (result.status === 'not_git') return { kind: 'committed', sha: null, files: changes.map((c) => c.path) };
      await afterLanding(deps, job, input.agentId, options, result);
      return { kind: 'committed', sha: result.sha, files: result.files };
    }),

    discard: fromPromise<DiscardOutput, DiscardInput>(async ({ input, signal }) => {
      const { job } = input;
      const attempt = job.review?.attempt ?? job.startAttempt;
      const options = treeOptions(deps, job, signal);
      // The rejected attempt is in the tree, and in this data dir's records, before it is undone.
      const treePath = await ensure(job, { upto: attempt }, signal);
      if (job.settings.isolation === 'worktree') await uncommitTaskTree(options);
      await discardAttempt(taskAttemptsDir(deps.attemptsRoot, job.settings.projectId, job.taskId), job.epoch, attempt, treePath);
      // Without guidance the task ends blocked: its tree goes (the branch stays).
      if (job.guidance === null) await removeTaskTree(options).catch(() => undefined);
      return { callKey: generationKey(job.taskId, job.epoch, attempt) };
    }),
  };
}
