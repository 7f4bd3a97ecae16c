/**
 * The worker statechart: one machine for backend, frontend and test agents.
 *
 *   idle ─ASSIGN→ working ┌─────────────────────────────────────────────────────────────────────┐
 *                         │ preparing → generating → applying → testing → committing ──────────→│ idle
 *                         │     │           ↑                      │ failed, attempts left       │ (or: waits for review)
 *                         │     │           └──── correcting ←─────┘ (no attempts left: exhausted → idle)
 *                         │     │                     ↑                                          │
 *                         │     ├─ revise → discarding┘ (a rejected change undone; without guidance → idle)
 *                         │     └─ land → landing → idle (an approved change merged)             │
 *                         └─ CANCEL → releasing (the task's tree removed) → idle ──────────────────┘
 *                           an effect's fault → idle, the task reported failed
 *
 * Every working state is a child of `working`, which holds the two transitions they share: `CANCEL`
 * and the fault of an invoked effect. A failed attempt is output data (an invalid answer, refused
 * files, failing tests) and drives normal transitions; a fault ends the job. Leaving a state aborts
 * its effect. Workers never write task rows: they report to the lead (`sendParent`). What a report
 * says is decided in `worker-reports.ts`; the effects' inputs and outputs are in `worker-effects.ts`.
 */
import { assign, sendParent, setup } from 'xstate';
import { placeholder } from './placeholder.ts';
import { isFatalFault, testsAccepted, type AgentType, type Job, type WorkerOutcome } from './types.ts';
import type {
  ApplyInput,
  ApplyOutput,
  AttemptFailure,
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
} from './worker-effects.ts';
import {
  attemptOf,
  committed,
  conflicted,
  exhausted,
  faulted,
  filesRefused,
  invalidAnswer,
  jobOf as job,
  landed,
  lastFailure,
  modelError,
  overBudget,
  REJECTED_WITHOUT_GUIDANCE,
  reportOf,
  reviewRejected,
  testsFailed,
} from './worker-reports.ts';
import { errorOf, only, output } from './effect-output.ts';

export type * from './worker-effects.ts';
export { workerStateName } from './worker-reports.ts';

/** Persisted snapshots of another version are not restored (README "Restarts lose nothing but time"). */
export const WORKER_MACHINE_VERSION = 3;

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

const idleContext = { job: null, treePath: null, callKey: null, failure: null, files: [], tested: null, attempt: 0 };

const tree = (context: WorkerContext): string => context.treePath ?? '';

/** What every step of an attempt is given: who works, on which job, which attempt, in which tree. */
const attemptInput = (context: WorkerContext) => ({ agentId: context.agentId, agentType: context.agentType, job: job(context), attempt: context.attempt, treePath: tree(context) });

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
    isProposal: (_, out: GenerateOutput) => out.kind === 'proposal',
    isOverBudget: (_, out: GenerateOutput) => out.kind === 'budget_exhausted',
    /** A failed model call another attempt may get past (overloaded, a timeout); a fatal one is a fault. */
    isTransient: (_, params: { error: unknown }) => !isFatalFault(params.error),
    filesApplied: (_, out: ApplyOutput) => out.kind === 'applied',
    /** `no_tests` fails a test agent's attempt; other agents complete unverified. */
    testsAccepted: ({ context }, out: TestOutput) => testsAccepted(out.status, context.agentType) || (out.preexisting?.length ?? 0) > 0,
    committed: (_, out: CommitOutput) => out.kind === 'committed',
    needsReview: (_, out: CommitOutput) => out.kind === 'review',
    isLanding: ({ context }) => job(context).mode === 'land',
    isRevising: ({ context }) => job(context).mode === 'revise',
    hasGuidance: ({ context }) => job(context).guidance !== null,
  },
  actions: {
    clearJob: assign(() => ({ ...idleContext })),
    takeJob: assign((_, job: Job) => ({ ...idleContext, job, attempt: Math.max(1, job.startAttempt) })),
    takeTree: assign((_, out: PrepareOutput) => ({ treePath: out.treePath })),
    noteFailure: assign((_, failure: AttemptFailure) => ({ failure })),
    announceAttempt: sendParent(({ context }) => attemptOf(context)),
    report: sendParent(({ context }, outcome: WorkerOutcome) => reportOf(context, outcome)),
  },
}).createMachine({
  id: 'worker',
  context: ({ input }) => ({ agentId: input.agentId, agentType: input.agentType, ...idleContext }),
  initial: 'idle',
  states: {
    idle: {
      on: {
        ASSIGN: { target: 'working', actions: { type: 'takeJob', params: ({ event }) => event.job } },
      },
    },
    releasing: {
      // Cancelled: the task's tree is removed. The worker is free at once (the lead may assign
      // the next job before the removal is done; git's worktree commands are queued anyway).
      on: {
        ASSIGN: { target: 'working', actions: { type: 'takeJob', params: ({ event }) => event.job } },
      },
      invoke: {
        src: 'release',
        input: ({ context }) => ({ agentId: context.agentId, job: job(context) }),
        onDone: { target: 'idle', actions: 'clearJob' },
        onError: { target: 'idle', actions: 'clearJob' },
      },
    },
    working: {
      initial: 'preparing',
      on: {
        CANCEL: 'releasing',
        // Any effect that threw (the workspace gone or read-only, a fatal model error): no
        // correction can fix that. The task fails with the reason.
        'xstate.error.actor.*': {
          target: 'idle',
          actions: [{ type: 'report', params: ({ event }: { event: object }) => faulted(errorOf(event)) }, 'clearJob'],
        },
      },
      states: {
        preparing: {
          invoke: {
            src: 'prepare',
            input: ({ context }) => ({ agentId: context.agentId, job: job(context) }),
            onDone: [
              { guard: 'isLanding', target: 'landing', actions: { type: 'takeTree', params: output } },
              { guard: 'isRevising', target: 'discarding', actions: { type: 'takeTree', params: output } },
              { target: 'generating', actions: { type: 'takeTree', params: output } },
            ],
          },
        },
        landing: {
          // A person approved the change under review: merge it (it was tested before the review).
          invoke: {
            src: 'land',
            input: ({ context }) => ({ agentId: context.agentId, job: job(context) }),
            onDone: [
              {
                guard: { type: 'committed', params: output },
                target: '#worker.idle',
                actions: [{ type: 'report', params: ({ context, event }) => landed(context, only(event.output, 'committed')) }, 'clearJob'],
              },
              {
                target: '#worker.idle',
                actions: [{ type: 'report', params: ({ event }) => conflicted(only(event.output, 'conflict')) }, 'clearJob'],
              },
            ],
          },
        },
        discarding: {
          // A person rejected the change: the tree goes back to where it was before that attempt.
          invoke: {
            src: 'discard',
            input: ({ context }) => ({ agentId: context.agentId, job: job(context), treePath: tree(context) }),
            onDone: [
              {
                guard: 'hasGuidance',
                target: 'correcting',
                actions: assign(({ context, event }) => ({ callKey: event.output.callKey, failure: reviewRejected(job(context)) })),
              },
              { target: '#worker.idle', actions: [{ type: 'report', params: REJECTED_WITHOUT_GUIDANCE }, 'clearJob'] },
            ],
          },
        },
        generating: {
          entry: 'announceAttempt',
          invoke: {
            src: 'generate',
            input: ({ context }) => ({ ...attemptInput(context), failure: context.failure, previousCallKey: context.callKey }),
            onDone: [
              {
                guard: { type: 'isProposal', params: output },
                target: 'applying',
                actions: assign(({ event }) => ({ callKey: only(event.output, 'proposal').callKey })),
              },
              {
                guard: { type: 'isOverBudget', params: output },
                target: '#worker.idle',
                actions: [{ type: 'report', params: ({ event }) => overBudget(only(event.output, 'budget_exhausted')) }, 'clearJob'],
              },
              {
                // An answer that is not a valid write_files call: a failed attempt, not a crash.
                target: 'evaluating',
                actions: assign(({ event }) => {
                  const out = only(event.output, 'invalid');
                  return { callKey: out.callKey, failure: invalidAnswer(out) };
                }),
              },
            ],
            // A fatal model error (a refused key) is left to `working`'s fault transition.
            onError: {
              guard: { type: 'isTransient', params: ({ event }) => ({ error: event.error }) },
              target: 'evaluating',
              actions: { type: 'noteFailure', params: ({ event }) => modelError(event.error) },
            },
          },
        },
        applying: {
          // The workspace layer returns refusals as data; a thrown error (a fault) means the
          // workspace itself is unusable.
          invoke: {
            src: 'apply',
            input: ({ context }) => ({
              agentId: context.agentId,
              job: job(context),
              attempt: context.attempt,
              treePath: tree(context),
              callKey: context.callKey ?? '',
            }),
            onDone: [
              {
                guard: { type: 'filesApplied', params: output },
                target: 'testing',
                actions: assign(({ context, event }) => ({ files: [...new Set([...context.files, ...only(event.output, 'applied').files])] })),
              },
              {
                target: 'evaluating',
                actions: { type: 'noteFailure', params: ({ event }) => filesRefused(only(event.output, 'rejected').reason) },
              },
            ],
          },
        },
        testing: {
          invoke: {
            src: 'test',
            input: ({ context }) => attemptInput(context),
            onDone: [
              { guard: { type: 'testsAccepted', params: output }, target: 'committing', actions: assign(({ event }) => ({ tested: event.output })) },
              { target: 'evaluating', actions: { type: 'noteFailure', params: ({ event }) => testsFailed(event.output) } },
            ],
          },
        },
        evaluating: {
          always: [{ guard: 'canCorrect', target: 'correcting' }, { target: 'exhausted' }],
        },
        correcting: {
          invoke: {
            src: 'correct',
            input: ({ context }) => ({ agentId: context.agentId, job: job(context), correction: context.attempt, failure: lastFailure(context) }),
            onDone: { target: 'generating', actions: assign(({ context }) => ({ attempt: context.attempt + 1 })) },
          },
        },
        exhausted: {
          invoke: {
            src: 'giveUp',
            input: ({ context }) => ({ agentId: context.agentId, job: job(context), correction: context.attempt - 1, failure: lastFailure(context) }),
            onDone: {
              target: '#worker.idle',
              actions: [{ type: 'report', params: ({ context, event }) => exhausted(context, event.output) }, 'clearJob'],
            },
          },
        },
        committing: {
          invoke: {
            src: 'commit',
            input: ({ context }) => ({
              agentId: context.agentId,
              job: job(context),
              attempt: context.attempt,
              treePath: tree(context),
              files: context.files,
              verified: context.tested?.status === 'passed',
            }),
            onDone: [
              {
                guard: { type: 'committed', params: output },
                target: '#worker.idle',
                actions: [{ type: 'report', params: ({ context, event }) => committed(context, only(event.output, 'committed')) }, 'clearJob'],
              },
              {
                // Tests passed, but the change touches what decides the tests (or the project
                // reviews everything): it waits for a person instead of landing.
                guard: { type: 'needsReview', params: output },
                target: '#worker.idle',
                actions: [{ type: 'report', params: ({ event }) => ({ kind: 'review', review: only(event.output, 'review').review }) }, 'clearJob'],
              },
              {
                target: '#worker.idle',
                actions: [{ type: 'report', params: ({ event }) => conflicted(only(event.output, 'conflict')) }, 'clearJob'],
              },
            ],
          },
        },
      },
    },
  },
});

export type WorkerMachine = typeof workerMachine;
