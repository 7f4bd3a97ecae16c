/**
 * The worker statechart: one machine for backend, frontend and test agents.
 *
 *   idle → preparing → generating → applying → testing → committing → idle
 *                          ↑                      │ failed, attempts left
 *                          └──── correcting ←─────┘ (no attempts left: exhausted → idle)
 *
 * A failed attempt is output data (an invalid answer, refused files, failing tests) and
 * drives normal transitions; `onError` is for faults. Leaving a state aborts its effect.
 * Workers never write task rows: they report to the lead (`sendParent`).
 */
import { assign, fromPromise, sendParent, setup } from 'xstate';
import {
  faultMessage,
  isFatalFault,
  testsAccepted,
  type AgentType,
  type Job,
  type TestStatus,
  type WorkerAttemptEvent,
  type WorkerOutcome,
  type WorkerReportEvent,
} from './types.ts';

export const WORKER_MACHINE_VERSION = 1;

/** Why the previous attempt failed: the correction prompt is built from it. */
export interface AttemptFailure {
  kind: 'invalid_answer' | 'files_rejected' | 'tests_failed' | 'model_error';
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
export interface TestOutput { status: TestStatus; summary: string; excerpt: string }

export interface CorrectionInput {
  agentId: string;
  job: Job;
  /** The correction being started, 1…maxCorrections. */
  correction: number;
  /** Why the attempt before it failed. */
  failure: AttemptFailure;
}
export interface GiveUpInput { agentId: string; job: Job; correction: number; failure: AttemptFailure }

export interface CommitInput { agentId: string; job: Job; attempt: number; treePath: string; files: string[] }
export type CommitOutput =
  | { kind: 'committed'; sha: string | null; files: string[] }
  | { kind: 'conflict'; detail: string };

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

const notProvided = (name: string) =>
  fromPromise<never, unknown>(() => Promise.reject(new Error(`worker effect '${name}' was not provided`)));

/** The output of the `xstate.done.actor.*` event a guard is looking at. */
function outputOf<T>(event: unknown): T {
  return (event as { output: T }).output;
}

function job(context: WorkerContext): Job {
  if (!context.job) throw new Error('worker has no job');
  return context.job;
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
    prepare: notProvided('prepare') as unknown as ReturnType<typeof fromPromise<PrepareOutput, PrepareInput>>,
    generate: notProvided('generate') as unknown as ReturnType<typeof fromPromise<GenerateOutput, GenerateInput>>,
    apply: notProvided('apply') as unknown as ReturnType<typeof fromPromise<ApplyOutput, ApplyInput>>,
    test: notProvided('test') as unknown as ReturnType<typeof fromPromise<TestOutput, TestInput>>,
    correct: notProvided('correct') as unknown as ReturnType<typeof fromPromise<void, CorrectionInput>>,
    giveUp: notProvided('giveUp') as unknown as ReturnType<typeof fromPromise<void, GiveUpInput>>,
    commit: notProvided('commit') as unknown as ReturnType<typeof fromPromise<CommitOutput, CommitInput>>,
  },
  guards: {
    canCorrect: ({ context }) => context.attempt - 1 < job(context).settings.maxCorrections,
    isProposal: ({ event }) => outputOf<GenerateOutput>(event).kind === 'proposal',
    isOverBudget: ({ event }) => outputOf<GenerateOutput>(event).kind === 'budget_exhausted',
    filesApplied: ({ event }) => outputOf<ApplyOutput>(event).kind === 'applied',
    /** `no_tests` fails a test agent's attempt; other agents complete unverified. */
    testsAccepted: ({ context, event }) => testsAccepted(outputOf<TestOutput>(event).status, context.agentType),
    committed: ({ event }) => outputOf<CommitOutput>(event).kind === 'committed',
    isFatal: (_, params: { error: unknown }) => isFatalFault(params.error),
  },
  actions: {
    clearJob: assign(() => ({ ...idleContext })),
    noteFailure: assign((_, failure: AttemptFailure) => ({ failure })),
    announceAttempt: sendParent(({ context }): WorkerAttemptEvent => {
      const j = job(context);
      return { type: 'WORKER.ATTEMPT', agentId: context.agentId, taskId: j.taskId, key: j.key, epoch: j.epoch, attempt: context.attempt };
    }),
    reportFault: sendParent(({ context }, params: { error: unknown }) =>
      report(context, { kind: 'failed', detail: faultMessage(params.error) }),
    ),
  },
}).createMachine({
  id: 'worker',
  context: ({ input }) => ({ agentId: input.agentId, agentType: input.agentType, ...idleContext }),
  initial: 'idle',
  states: {
    idle: {
      on: {
        ASSIGN: {
          target: 'preparing',
          actions: assign(({ event }) => ({ ...idleContext, job: event.job, attempt: Math.max(1, event.job.startAttempt) })),
        },
      },
    },
    preparing: {
      on: { CANCEL: { target: 'idle', actions: 'clearJob' } },
      invoke: {
        src: 'prepare',
        input: ({ context }) => ({ agentId: context.agentId, job: job(context) }),
        onDone: { target: 'generating', actions: assign(({ event }) => ({ treePath: event.output.treePath })) },
        onError: {
          target: 'idle',
          actions: [{ type: 'reportFault', params: ({ event }) => ({ error: event.error }) }, 'clearJob'],
        },
      },
    },
    generating: {
      entry: 'announceAttempt',
      on: { CANCEL: { target: 'idle', actions: 'clearJob' } },
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
      on: { CANCEL: { target: 'idle', actions: 'clearJob' } },
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
      on: { CANCEL: { target: 'idle', actions: 'clearJob' } },
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
      on: { CANCEL: { target: 'idle', actions: 'clearJob' } },
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
      on: { CANCEL: { target: 'idle', actions: 'clearJob' } },
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
            sendParent(({ context }) =>
              report(context, {
                kind: 'blocked',
                reason: 'attempts_exhausted',
                detail: `${context.attempt} attempt(s) failed; last: ${context.failure?.summary ?? 'unknown'}`,
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
      on: { CANCEL: { target: 'idle', actions: 'clearJob' } },
      invoke: {
        src: 'commit',
        input: ({ context }) => ({
          agentId: context.agentId,
          job: job(context),
          attempt: context.attempt,
          treePath: context.treePath ?? '',
          files: context.files,
        }),
        onDone: [
          {
            guard: 'committed',
            target: 'idle',
            actions: [
              sendParent(({ context, event }) => {
                const out = event.output as Extract<CommitOutput, { kind: 'committed' }>;
                return report(context, {
                  kind: 'completed',
                  commit: out.sha,
                  files: out.files,
                  verified: context.tested?.status === 'passed',
                });
              }),
              'clearJob',
            ],
          },
          {
            target: 'idle',
            actions: [
              sendParent(({ context, event }) =>
                report(context, { kind: 'blocked', reason: 'merge_conflict', detail: (event.output as { detail: string }).detail }),
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
  },
});

export type WorkerMachine = typeof workerMachine;
