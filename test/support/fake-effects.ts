/**
 * Fake effects for machine tests: the real statecharts, with in-memory effects that follow a
 * script. Each generation can be held open (a hanging model call) and records whether its
 * AbortSignal fired.
 */
import { createActor, fromPromise, type Actor, type StateValue } from 'xstate';
import type { Intent, IntentResult } from '../../src/machines/lead-logic.ts';
import { leadMachine, type LeadInput, type LeadSettings, type PersistInput, type PersistOutput, type PlanInput, type PlanOutput, type PreflightInput, type PreflightOutput } from '../../src/machines/lead.ts';
import type { Job, TaskView, TestStatus } from '../../src/machines/types.ts';
import {
  workerMachine,
  workerStateName,
  type ApplyInput,
  type CommitInput,
  type DiscardInput,
  type DiscardOutput,
  type LandInput,
  type LandOutput,
  type CommitOutput,
  type CorrectionInput,
  type GenerateInput,
  type GenerateOutput,
  type GiveUpInput,
  type GiveUpOutput,
  type PrepareInput,
  type ReleaseInput,
  type TestInput,
} from '../../src/machines/worker.ts';
import { deferred, type Deferred } from './deferred.ts';

/** `review`: tests pass and the change goes to review (it touched a protected file). */
export type Step = TestStatus | 'invalid' | 'budget' | 'fatal' | 'model_error' | 'rejected' | 'conflict' | 'review';

export type Effect = 'generate' | 'apply' | 'test' | 'correct' | 'release';

export interface FakeScript {
  /** Outcome of the Nth generation of each task key (across retries); the last repeats. Default: ['passed']. */
  steps?: Record<string, Step[]>;
  /** Keys whose generation hangs until released (or aborted). */
  hang?: Set<string>;
  /** Keys whose test run hangs until released (or aborted). */
  hangTests?: Set<string>;
  /** Keys whose apply or correction hangs until released (or aborted). */
  hangApply?: Set<string>;
  hangCorrect?: Set<string>;
  /** Keys whose release (the cleanup after a cancel) waits until released. */
  hangRelease?: Set<string>;
  plan?: (input: PlanInput) => Promise<PlanOutput>;
  /** The run's preflight (default: ready, no baseline). */
  preflight?: (input: PreflightInput) => Promise<PreflightOutput>;
  /** Make the worker's correction guard throw: a bug that crashes the worker actor. */
  crashWorker?: boolean;
  /** Make some writes lose their race. */
  persist?: (intents: Intent[]) => IntentResult[];
  /** Tasks the database has but the lead does not know, found by its first finishing write. */
  foundOnFinish?: TaskView[];
}

export interface Call {
  effect: Effect;
  key: string;
  attempt: number;
  aborted: boolean;
  release: Deferred<void>;
}

export function settings(overrides: Partial<LeadSettings> = {}): LeadSettings {
  return {
    maxConcurrency: 3,
    maxAgents: 6,
    maxCorrections: 2,
    budgetUsd: null,
    models: { lead: 'm', backend: 'm', frontend: 'm', test: 'm' },
    workspace: '/ws',
    isolation: 'shared',
    testCommand: ['true'],
    testTimeoutMs: 1000,
    sandbox: { mode: 'none', network: false },
    review: 'protected',
    protectedPaths: ['package.json'],
    ...overrides,
  };
}

let ordinal = 0;
export function task(key: string, dependsOn: string[] = [], extra: Partial<TaskView> = {}): TaskView {
  return {
    id: `id-${key}`,
    key,
    agentType: 'backend',
    dependsOn,
    priority: 2,
    ordinal: ++ordinal,
    status: 'pending',
    blockedReason: null,
    epoch: 0,
    attempts: 0,
    agentId: null,
    ...extra,
  };
}

export function fakeLead(input: Omit<LeadInput, 'projectId' | 'runId' | 'goal' | 'start'> & Partial<LeadInput>, script: FakeScript = {}) {
  const writes: Intent[][] = [];
  const calls: Call[] = [];
  const tests: Call[] = [];
  const corrections: CorrectionInput[] = [];
  const giveUps: GiveUpInput[] = [];
  const lands: LandInput[] = [];
  const discards: DiscardInput[] = [];
  const releases: ReleaseInput[] = [];
  /** Every job a worker was handed, in order. */
  const jobs: Job[] = [];
  const effects: Call[] = [];
  const waiters: { match: (c: Call) => boolean; done: Deferred<Call> }[] = [];
  const generations = new Map<string, number>();
  const current = new Map<string, Step>();
  let live = 0;
  let maxLive = 0;

  const nextStep = (key: string): Step => {
    const n = (generations.get(key) ?? 0) + 1;
    generations.set(key, n);
    const steps = script.steps?.[key] ?? ['passed'];
    const step = steps[Math.min(n - 1, steps.length - 1)]!;
    current.set(key, step);
    return step;
  };
  const stepFor = (key: string): Step => current.get(key) ?? 'passed';
  const hold = async (effect: Effect, list: Call[], key: string, attempt: number, hang: boolean, signal: AbortSignal) => {
    const call: Call = { effect, key, attempt, aborted: false, release: deferred() };
    list.push(call);
    if (list !== effects) effects.push(call);
    signal.addEventListener('abort', () => {
      call.aborted = true;
      call.release.reject(new Error('aborted'));
    });
    for (const w of waiters) if (w.match(call)) w.done.resolve(call);
    if (!hang) call.release.resolve();
    await call.release.promise;
  };
  /** Resolves when an effect call matching (effect, key[, attempt]) has started. */
  const started = (effect: Effect, key: string, attempt?: number): Promise<Call> => {
    const match = (c: Call) => c.effect === effect && c.key === key && (attempt === undefined || c.attempt === attempt);
    const found = effects.find(match);
    if (found) return Promise.resolve(found);
    const done = deferred<Call>();
    waiters.push({ match, done });
    return done.promise;
  };

  const worker = workerMachine.provide({
    guards: script.crashWorker
      ? {
          canCorrect: () => {
            throw new Error('boom');
          },
        }
      : {},
    actors: {
      prepare: fromPromise(async ({ input }: { input: PrepareInput }) => {
        jobs.push(input.job);
        return { treePath: '/tree' };
      }),
      generate: fromPromise<GenerateOutput, GenerateInput>(async ({ input, signal }) => {
        live++;
        maxLive = Math.max(maxLive, live);
        try {
          await hold('generate', calls, input.job.key, input.attempt, script.hang?.has(input.job.key) ?? false, signal);
        } finally {
          live--;
        }
        const step = nextStep(input.job.key);
        if (step === 'budget') return { kind: 'budget_exhausted', spentUsd: 2, budgetUsd: 1 };
        if (step === 'invalid') return { kind: 'invalid', callKey: `k${input.attempt}`, reason: 'no tool call' };
        if (step === 'fatal') throw Object.assign(new Error('401 invalid x-api-key'), { fatal: true });
        if (step === 'model_error') throw new Error('529 overloaded');
        return { kind: 'proposal', callKey: `k${input.attempt}`, fileCount: 1 };
      }),
      apply: fromPromise(async ({ input, signal }: { input: ApplyInput; signal: AbortSignal }) => {
        await hold('apply', effects, input.job.key, input.attempt, script.hangApply?.has(input.job.key) ?? false, signal);
        return stepFor(input.job.key) === 'rejected'
          ? { kind: 'rejected' as const, reason: 'path escapes the workspace: ../x' }
          : { kind: 'applied' as const, files: [`${input.job.key}.js`] };
      }),
      test: fromPromise(async ({ input, signal }: { input: TestInput; signal: AbortSignal }) => {
        await hold('test', tests, input.job.key, input.attempt, script.hangTests?.has(input.job.key) ?? false, signal);
        const step = stepFor(input.job.key);
        const status: TestStatus = ['passed', 'failed', 'error', 'timeout', 'no_tests'].includes(step) ? (step as TestStatus) : 'passed';
        return { status, summary: `tests ${status}`, excerpt: status === 'passed' ? '' : 'AssertionError: 1 !== 2' };
      }),
      correct: fromPromise(async ({ input, signal }: { input: CorrectionInput; signal: AbortSignal }) => {
        corrections.push(input);
        await hold('correct', effects, input.job.key, input.correction, script.hangCorrect?.has(input.job.key) ?? false, signal);
      }),
      giveUp: fromPromise<GiveUpOutput, GiveUpInput>(async ({ input }) => {
        giveUps.push(input);
        return { keptOn: null };
      }),
      commit: fromPromise<CommitOutput, CommitInput>(async ({ input }) => {
        const step = stepFor(input.job.key);
        if (step === 'conflict') return { kind: 'conflict' as const, detail: 'CONFLICT in a.js' };
        if (step === 'review') return { kind: 'review' as const, review: { reason: 'protected_paths' as const, files: ['package.json'], attempt: input.attempt, verified: false } };
        return { kind: 'committed' as const, sha: `sha-${input.job.key}`, files: input.files };
      }),
      land: fromPromise<LandOutput, LandInput>(async ({ input }) => {
        lands.push(input);
        return { kind: 'committed' as const, sha: `sha-${input.job.key}`, files: ['package.json'] };
      }),
      discard: fromPromise<DiscardOutput, DiscardInput>(async ({ input }) => {
        discards.push(input);
        return { callKey: `k${input.job.review?.attempt ?? 0}` };
      }),
      release: fromPromise<void, ReleaseInput>(async ({ input, signal }) => {
        releases.push(input);
        await hold('release', effects, input.job.key, 0, script.hangRelease?.has(input.job.key) ?? false, signal);
      }),
    },
  });

  const machine = leadMachine.provide({
    actors: {
      worker,
      preflight: fromPromise<PreflightOutput, PreflightInput>(async ({ input }) =>
        script.preflight ? script.preflight(input) : { kind: 'ready' as const, baseline: null },
      ),
      plan: fromPromise(async ({ input }: { input: PlanInput }) =>
        script.plan ? script.plan(input) : { kind: 'invalid' as const, reason: 'no planner' },
      ),
      persist: fromPromise<PersistOutput, PersistInput>(async ({ input }) => {
        writes.push(input.intents);
        const finishing = input.intents.find((i) => i.type === 'run' && i.knownKeys);
        if (finishing && script.foundOnFinish) {
          const added = script.foundOnFinish;
          script.foundOnFinish = undefined;
          return { results: [{ applied: false }], added };
        }
        return { results: script.persist ? script.persist(input.intents) : input.intents.map(() => ({ applied: true })) };
      }),
    },
  });

  /** State values each worker went through, in order (consecutive duplicates dropped). */
  const workerStates: Record<string, unknown[]> = {};
  const actor: Actor<typeof machine> = createActor(machine, {
    input: { projectId: 'p', runId: 'r', goal: null, start: 'running', ...input },
    inspect: (ev) => {
      if (ev.type !== '@xstate.snapshot') return;
      const id = (ev.actorRef as unknown as { id: string }).id;
      const raw = (ev.snapshot as { value?: StateValue }).value;
      if (!/^(backend|frontend|test)-\d+$/.test(id) || raw === undefined) return;
      const value = workerStateName(raw);
      const list = (workerStates[id] ??= []);
      if (list.at(-1) !== value) list.push(value);
    },
  });
  return {
    actor,
    machine,
    writes,
    calls,
    tests,
    corrections,
    giveUps,
    lands,
    discards,
    releases,
    jobs,
    effects,
    started,
    workerStates,
    get maxLive() {
      return maxLive;
    },
    intents: () => writes.flat(),
    statusOf: (key: string) => actor.getSnapshot().context.tasks[key]?.status,
  };
}
