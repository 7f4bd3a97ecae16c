/**
 * The worker statechart: one machine for backend, frontend and test agents.
 *
 *   idle → preparing → generating → applying → testing → committing → idle
 *              │           ↑                      │ failed, attempts left      (or: waits for review)
 *              │           └──── correcting ←─────┘ (no attempts left: exhausted → idle)
 *              │                     ↑
 *              ├─ revise → discarding┘ (a rejected change undone; without guidance → idle)
 *              └─ land → landing → idle (an approved change merged)
 *   CANCEL (any working state) → releasing (the task's tree removed) → idle
 *
 * A failed attempt is output data (an invalid answer, refused files, failing tests) and
 * drives normal transitions; `onError` is for faults. Leaving a state aborts its effect.
 * Workers never write task rows: they report to the lead (`sendParent`).
 */
import { assign, sendParent, setup } from 'xstate';
import { placeholder } from './placeholder.ts';
import {
  faultMessage,
  isFatalFault,
  testsAccepted,
  type AgentType,
  type Job,
  type TaskReview,
  type TestStatus,
  type WorkerAttemptEvent,
  type WorkerOutcome,
  type WorkerReportEvent,
} from './types.ts';

export const WORKER_MACHINE_VERSION = 2;

/** Why the previous attempt failed: the correction prompt is built from it. */
export interface AttemptFailure {
  kind: 'invalid_answer' | 'files_rejected' | 'tests_failed' | 'model_error' | 'review_rejected';
  summary: string;
  /** Failing test output, already cut from the middle when long. */
  excerpt?: string;
}

export interface PrepareInput { agentId: string; job: Job }
export interface PrepareOutput { treePath: string }

export interface GenerateInput {
  agentId: string;
  agentType: AgentType;
  job: Job;
  attempt: number;
  treePath: string;
  failure: AttemptFailure | null;
  /** The answer of the previous attempt, for "here is what you wrote". */
  previousCallKey: string | null;
}
export type GenerateOutput =
  | { kind: 'proposal'; callKey: string; fileCount: number }
  | { kind: 'invalid'; callKey: string; reason: string }
  | { kind: 'budget_exhausted'; spentUsd: number; budgetUsd: number };

export interface ApplyInput { agentId: string; job: Job; attempt: number; treePath: string; callKey: string }
export type ApplyOutput = { kind: 'applied'; files: string[] } | { kind: 'rejected'; reason: string };

export interface TestInput { agentId: string; agentType: AgentType; job: Job; attempt: number; treePath: string }
export interface TestOutput {
  status: TestStatus;
  summary: string;
  excerpt: string;
  /**
   * The run failed, but only tests that already failed on the base tree before any change (the
   * baseline) failed again: the attempt broke nothing, and the task completes, unverified.
   */
  preexisting?: string[];
}

export interface CorrectionInput {
  agentId: string;
  job: Job;
  /** The correction being started, 1…maxCorrections. */
  correction: number;
  /** Why the attempt before it failed. */
  failure: AttemptFailure;
}
export interface GiveUpInput { agentId: string; job: Job; correction: number; failure: AttemptFailure }

/** Where the last attempt's work was kept (worktree mode: a commit on the task's branch), or null. */
export interface GiveUpOutput {
  keptOn: string | null;
  /** Why the work could not be kept (the task is blocked all the same). */
  keepError?: string;
}

export interface CommitInput {
  agentId: string;
  job: Job;
  attempt: number;
  treePath: string;
  files: string[];
  /** The tests passed (not only "no tests found"). */
  verified: boolean;
}
export type CommitOutput =
  | { kind: 'committed'; sha: string | null; files: string[] }
  | { kind: 'conflict'; detail: string }
  | { kind: 'review'; review: TaskReview };

/** Merges (worktree) or commits in place (shared) a change a person approved. */
export interface LandInput { agentId: string; job: Job }
export type LandOutput = Exclude<CommitOutput, { kind: 'review' }>;

/** Undoes the attempt a person rejected; `callKey`: that attempt's answer, for the correction prompt. */
export interface DiscardInput { agentId: string; job: Job; treePath: string }
export interface DiscardOutput { callKey: string }

/** A cancelled job: its tree is removed (worktree mode; the branch stays). */
export interface ReleaseInput { agentId: string; job: Job }

export interface WorkerInput { agentId: string; agentType: AgentType }

export interface WorkerContext {
  agentId: string;
  agentType: AgentType;
  job: Job | null;
  /** Generation number of the current attempt: 1 + corrections. */
  attempt: number;
  treePath: string | null;
  callKey: string | null;
  failure: AttemptFailure | null;
  /** Files written by any attempt of this job (for shared-mode commits). */
  files: string[];
  tested: TestOutput | null;
}

export type WorkerEvent = { type: 'ASSIGN'; job: Job } | { type: 'CANCEL' };

/** Where a blocked task's last attempt went, as the end of its reason. */
function keptWords(out: GiveUpOutput): string {
  if (out.keptOn) return ` (the last attempt's work is kept on branch ${out.keptOn})`;
  if (out.keepError) return ` (the last attempt's work could not be kept: ${out.keepError})`;
  return '';
}

/** The output of the `xstate.done.actor.*` event a guard is looking at. */
function outputOf<T>(event: unknown): T {
  return (event as { output: T }).output;
}

function job(context: WorkerContext): Job {
  if (!context.job) throw new Error('worker has no job');
  return context.job;
}

/** Why a task whose only failing tests failed before any change completes unverified. */
function preexistingDetail(tested: TestOutput | null): { detail?: string } {
  const names = tested?.preexisting ?? [];
  if (names.length === 0) return {};
  return { detail: `not verified: only tests that already failed before any change still fail (${names.slice(0, 5).join('; ')}${names.length > 5 ? '; …' : ''})` };
}

function report(context: WorkerContext, outcome: WorkerOutcome): WorkerReportEvent {
  const j = job(context);
  return { type: 'WORKER.REPORT', agentId: context.agentId, taskId: j.taskId, key: j.key, epoch: j.epoch, outcome };
}

const idleContext = { job: null, treePath: null, callKey: null, failure: null, files: [], tested: null, attempt: 0 };

export const workerMachine = setup({
  types: {
    context: {} as WorkerContext,
    events: {} as WorkerEvent,
    input: {} as WorkerInput,
  },
  actors: {
    prepare: placeholder<PrepareOutput, PrepareInput>('worker', 'prepare'),
    generate: placeholder<GenerateOutput, GenerateInput>('worker', 'generate'),
    apply: placeholder<ApplyOutput, ApplyInput>('worker', 'apply'),
    test: placeholder<TestOutput, TestInput>('worker', 'test'),
    correct: placeholder<void, CorrectionInput>('worker', 'correct'),
    giveUp: placeholder<GiveUpOutput, GiveUpInput>('worker', 'giveUp'),
    commit: placeholder<CommitOutput, CommitInput>('worker', 'commit'),
    land: placeholder<LandOutput, LandInput>('worker', 'land'),
    discard: placeholder<DiscardOutput, DiscardInput>('worker', 'discard'),
    release: placeholder<void, ReleaseInput>('worker', 'release'),
  },
  guards: {
    canCorrect: ({ context }) => context.attempt - 1 < job(context).settings.maxCorrections,
    isProposal: ({ event }) => outputOf<GenerateOutput>(event).kind === 'proposal',
    isOverBudget: ({ event }) => outputOf<GenerateOutput>(event).kind === 'budget_exhausted',
    filesApplied: ({ event }) => outputOf<ApplyOutput>(event).kind === 'applied',
    /** `no_tests` fails a test agent's attempt; other agents complete unverified. */
    testsAccepted: ({ context, event }) => {
      const out = outputOf<TestOutput>(event);
      return testsAccepted(out.status, context.agentType) || (out.preexisting?.length ?? 0) > 0;
    },
    committed: ({ event }) => outputOf<CommitOutput>(event).kind === 'committed',
    needsReview: ({ event }) => outputOf<CommitOutput>(event).kind === 'review',
    isLanding: ({ context }) => job(context).mode === 'land',
    isRevising: ({ context }) => job(context).mode === 'revise',
    hasGuidance: ({ context }) => job(context).guidance !== null,
    isFatal: (_, params: { error: unknown }) => isFatalFault(params.error),
  },
  actions: {
    clearJob: assign(() => ({ ...idleContext })),
    takeJob: assign((_, job: Job) => ({ ...idleContext, job, attempt: Math.max(1, job.startAttempt) })),
    noteFailure: assign((_, failure: AttemptFailure) => ({ failure })),
    announceAttempt: sendParent(({ context }): WorkerAttemptEvent => {
      const j = job(context);
      return { type: 'WORKER.ATTEMPT', agentId: context.agentId, taskId: j.taskId, key: j.key, epoch: j.epoch, attempt: context.attempt };
    }),
    reportFault: sendParent(({ context }, params: { error: unknown }) =>
      report(context, { kind: 'failed', detail: faultMessage(params.error) }),
    ),
    reportCompleted: sendParent(({ context }, params: { commit: string | null; files: string[]; verified: boolean; detail?: string }) =>
      report(context, { kind: 'completed', ...params }),
    ),
    reportConflict: sendParent(({ context }, params: { detail: string }) =>
      report(context, { kind: 'blocked', reason: 'merge_conflict', detail: params.detail }),
    ),
  },
}).createMachine({
  id: 'worker',
  context: ({ input }) => ({ agentId: input.agentId, agentType: input.agentType, ...idleContext }),
  initial: 'idle',
  states: {
    idle: {
      on: {
        ASSIGN: { target: 'preparing', actions: { type: 'takeJob', params: ({ event }) => event.job } },
      },
    },
    releasing: {
      // Cancelled: the task's tree is removed. The worker is free at once (the lead may assign
      // the next job before the removal is done; git's worktree commands are queued anyway).
      on: {
        ASSIGN: { target: 'preparing', actions: { type: 'takeJob', params: ({ event }) => event.job } },
      },
      invoke: {
        src: 'release',
        input: ({ context }) => ({ agentId: context.agentId, job: job(context) }),
        onDone: { target: 'idle', actions: 'clearJob' },
        onError: { target: 'idle', actions: 'clearJob' },
      },
    },
    preparing: {
      on: { CANCEL: 'releasing' },
      invoke: {
        src: 'prepare',
        input: ({ context }) => ({ agentId: context.agentId, job: job(context) }),
        onDone: [
          { guard: 'isLanding', target: 'landing', actions: assign(({ event }) => ({ treePath: event.output.treePath })) },
          { guard: 'isRevising', target: 'discarding', actions: assign(({ event }) => ({ treePath: event.output.treePath })) },
          { target: 'generating', actions: assign(({ event }) => ({ treePath: event.output.treePath })) },
        ],
        onError: {
          target: 'idle',
          actions: [{ type: 'reportFault', params: ({ event }) => ({ error: event.error }) }, 'clearJob'],
        },
      },
    },
    landing: {
      // A person approved the change under review: merge it (it was tested before the review).
      on: { CANCEL: 'releasing' },
      invoke: {
        src: 'land',
        input: ({ context }) => ({ agentId: context.agentId, job: job(context) }),
        onDone: [
          {
            guard: 'committed',
            target: 'idle',
            actions: [
              {
                type: 'reportCompleted',
                params: ({ context, event }) => {
                  const out = event.output as Extract<CommitOutput, { kind: 'committed' }>;
                  // Tested before the review; verified only if the test setup was the project's own.
                  return { commit: out.sha, files: out.files, verified: job(context).review?.verified ?? false };
                },
              },
              'clearJob',
            ],
          },
          {
            target: 'idle',
            actions: [{ type: 'reportConflict', params: ({ event }) => ({ detail: (event.output as { detail: string }).detail }) }, 'clearJob'],
          },
        ],
        onError: {
          target: 'idle',
          actions: [{ type: 'reportFault', params: ({ event }) => ({ error: event.error }) }, 'clearJob'],
        },
      },
    },
    discarding: {
      // A person rejected the change: the tree goes back to where it was before that attempt.
      on: { CANCEL: 'releasing' },
      invoke: {
        src: 'discard',
        input: ({ context }) => ({ agentId: context.agentId, job: job(context), treePath: context.treePath ?? '' }),
        onDone: [
          {
            guard: 'hasGuidance',
            target: 'correcting',
            actions: assign(({ context, event }) => ({
              callKey: event.output.callKey,
              failure: {
                kind: 'review_rejected' as const,
                summary: `A person reviewed your change and rejected it; it has been undone. Their guidance: ${job(context).guidance ?? ''}`,
              },
            })),
          },
          {
            target: 'idle',
            actions: [
              sendParent(({ context }) =>
                report(context, { kind: 'blocked', reason: 'review_rejected', detail: 'rejected in review: the change was discarded' }),
              ),
              'clearJob',
            ],
          },
        ],
        onError: {
          target: 'idle',
          actions: [{ type: 'reportFault', params: ({ event }) => ({ error: event.error }) }, 'clearJob'],
        },
      },
    },
    generating: {
      entry: 'announceAttempt',
      on: { CANCEL: 'releasing' },
      invoke: {
        src: 'generate',
        input: ({ context }) => ({
          agentId: context.agentId,
          agentType: context.agentType,
          job: job(context),
          attempt: context.attempt,
          treePath: context.treePath ?? '',
          failure: context.failure,
          previousCallKey: context.callKey,
        }),
        onDone: [
          {
            guard: 'isProposal',
            target: 'applying',
            actions: assign(({ event }) => ({ callKey: (event.output as { callKey: string }).callKey })),
          },
          {
            guard: 'isOverBudget',
            target: 'idle',
            actions: [
              sendParent(({ context, event }) => {
                const out = event.output as Extract<GenerateOutput, { kind: 'budget_exhausted' }>;
                return report(context, { kind: 'budget_exhausted', spentUsd: out.spentUsd, budgetUsd: out.budgetUsd });
              }),
              'clearJob',
            ],
          },
          {
            // An answer that is not a valid write_files call: a failed attempt, not a crash.
            target: 'evaluating',
            actions: assign(({ event }) => {
              const out = event.output as Extract<GenerateOutput, { kind: 'invalid' }>;
              return { callKey: out.callKey, failure: { kind: 'invalid_answer' as const, summary: out.reason } };
            }),
          },
        ],
        onError: [
          {
            guard: { type: 'isFatal', params: ({ event }) => ({ error: event.error }) },
            target: 'idle',
            actions: [{ type: 'reportFault', params: ({ event }) => ({ error: event.error }) }, 'clearJob'],
          },
          {
            target: 'evaluating',
            actions: {
              type: 'noteFailure',
              params: ({ event }) => ({ kind: 'model_error', summary: `model call failed: ${faultMessage(event.error)}` }),
            },
          },
        ],
      },
    },
    applying: {
      on: { CANCEL: 'releasing' },
      invoke: {
        src: 'apply',
        input: ({ context }) => ({
          agentId: context.agentId,
          job: job(context),
          attempt: context.attempt,
          treePath: context.treePath ?? '',
          callKey: context.callKey ?? '',
        }),
        onDone: [
          {
            guard: 'filesApplied',
            target: 'testing',
            actions: assign(({ context, event }) => {
              const files = (event.output as { files: string[] }).files;
              return { files: [...new Set([...context.files, ...files])] };
            }),
          },
          {
            target: 'evaluating',
            actions: {
              type: 'noteFailure',
              params: ({ event }) => ({
                kind: 'files_rejected',
                summary: `files refused: ${(event.output as { reason: string }).reason}`,
              }),
            },
          },
        ],
        onError: {
          // The workspace layer returns refusals as data; a thrown error means the workspace
          // itself is unusable (gone, read-only): no correction can fix that.
          target: 'idle',
          actions: [{ type: 'reportFault', params: ({ event }) => ({ error: event.error }) }, 'clearJob'],
        },
      },
    },
    testing: {
      on: { CANCEL: 'releasing' },
      invoke: {
        src: 'test',
        input: ({ context }) => ({
          agentId: context.agentId,
          agentType: context.agentType,
          job: job(context),
          attempt: context.attempt,
          treePath: context.treePath ?? '',
        }),
        onDone: [
          {
            guard: 'testsAccepted',
            target: 'committing',
            actions: assign(({ event }) => ({ tested: event.output })),
          },
          {
            target: 'evaluating',
            actions: {
              type: 'noteFailure',
              params: ({ event }) => ({ kind: 'tests_failed', summary: event.output.summary, excerpt: event.output.excerpt }),
            },
          },
        ],
        onError: {
          target: 'idle',
          actions: [{ type: 'reportFault', params: ({ event }) => ({ error: event.error }) }, 'clearJob'],
        },
      },
    },
    evaluating: {
      always: [{ guard: 'canCorrect', target: 'correcting' }, { target: 'exhausted' }],
    },
    correcting: {
      on: { CANCEL: 'releasing' },
      invoke: {
        src: 'correct',
        input: ({ context }) => ({
          agentId: context.agentId,
          job: job(context),
          correction: context.attempt,
          failure: context.failure ?? { kind: 'model_error', summary: 'unknown failure' },
        }),
        onDone: { target: 'generating', actions: assign(({ context }) => ({ attempt: context.attempt + 1 })) },
        onError: {
          target: 'idle',
          actions: [{ type: 'reportFault', params: ({ event }) => ({ error: event.error }) }, 'clearJob'],
        },
      },
    },
    exhausted: {
      on: { CANCEL: 'releasing' },
      invoke: {
        src: 'giveUp',
        input: ({ context }) => ({
          agentId: context.agentId,
          job: job(context),
          correction: context.attempt - 1,
          failure: context.failure ?? { kind: 'model_error', summary: 'unknown failure' },
        }),
        onDone: {
          target: 'idle',
          actions: [
            sendParent(({ context, event }) =>
              report(context, {
                kind: 'blocked',
                reason: 'attempts_exhausted',
                detail: `${context.attempt} attempt(s) failed; last: ${context.failure?.summary ?? 'unknown'}${keptWords(event.output)}`,
              }),
            ),
            'clearJob',
          ],
        },
        onError: {
          target: 'idle',
          actions: [{ type: 'reportFault', params: ({ event }) => ({ error: event.error }) }, 'clearJob'],
        },
      },
    },
    committing: {
      on: { CANCEL: 'releasing' },
      invoke: {
        src: 'commit',
        input: ({ context }) => ({
          agentId: context.agentId,
          job: job(context),
          attempt: context.attempt,
          treePath: context.treePath ?? '',
          files: context.files,
          verified: context.tested?.status === 'passed',
        }),
        onDone: [
          {
            guard: 'committed',
            target: 'idle',
            actions: [
              {
                type: 'reportCompleted',
                params: ({ context, event }) => {
                  const out = event.output as Extract<CommitOutput, { kind: 'committed' }>;
                  return { commit: out.sha, files: out.files, verified: context.tested?.status === 'passed', ...preexistingDetail(context.tested) };
                },
              },
              'clearJob',
            ],
          },
          {
            // Tests passed, but the change touches what decides the tests (or the project reviews
            // everything): it waits for a person instead of landing.
            guard: 'needsReview',
            target: 'idle',
            actions: [
              sendParent(({ context, event }) => report(context, { kind: 'review', review: (event.output as { review: TaskReview }).review })),
              'clearJob',
            ],
          },
          {
            target: 'idle',
            actions: [{ type: 'reportConflict', params: ({ event }) => ({ detail: (event.output as { detail: string }).detail }) }, 'clearJob'],
          },
        ],
        onError: {
          target: 'idle',
          actions: [{ type: 'reportFault', params: ({ event }) => ({ error: event.error }) }, 'clearJob'],
        },
      },
    },
  },
});

export type WorkerMachine = typeof workerMachine;
