/**
 * Model-based path tests of the worker and lead statecharts (`@xstate/graph`): the traversal offers
 * every effect a small set of representative outcomes (as done/error events) plus the external
 * events, and each property is asserted on EVERY generated path, not on hand-picked ones.
 */
import { getShortestPaths, getSimplePaths, type StatePath } from '@xstate/graph';
import { createActor, type EventObject, type SnapshotFrom } from 'xstate';
import { describe, expect, it } from 'vitest';
import { leadMachine } from '../../src/machines/lead.ts';
import { workerMachine, workerStateName, type TestOutput } from '../../src/machines/worker.ts';
import { parseWorkerId, testsAccepted, type AgentType, type Job, type JobSettings, type TaskReview, type WorkerOutcome } from '../../src/machines/types.ts';
import { settings, task } from '../support/fake-effects.ts';
import { doneEvent, errorEvent, invokeId, pureMachine, stateKey, walk, type Walked } from '../support/machine-paths.ts';

type WorkerSnapshot = SnapshotFrom<typeof workerMachine>;
type LeadSnapshot = SnapshotFrom<typeof leadMachine>;
type AnyEvent = EventObject & { job?: Job; output?: unknown };

const MAX_CORRECTIONS = 2;
const jobSettings: JobSettings = {
  projectId: 'p',
  runId: 'r',
  workspace: '/ws',
  isolation: 'worktree',
  testCommand: ['true'],
  testTimeoutMs: 1000,
  maxCorrections: MAX_CORRECTIONS,
  model: 'm',
  sandbox: { mode: 'none', network: false },
  review: 'protected',
  protectedPaths: ['package.json'],
};
const review: TaskReview = { reason: 'protected_paths', files: ['package.json'], attempt: 1, verified: true };
const job = (key: string, extra: Partial<Job> = {}): Job => ({
  taskId: `id-${key}`,
  key,
  epoch: 0,
  startAttempt: 1,
  mode: 'work',
  review: null,
  guidance: null,
  settings: jobSettings,
  ...extra,
});
/** One job of each mode: work, land (approved), revise with and without guidance. */
const JOBS = [
  job('work'),
  job('land', { mode: 'land', review: { ...review, decision: 'approved' } }),
  job('revise', { mode: 'revise', review: { ...review, decision: 'rejected' }, guidance: 'use x' }),
  job('reject', { mode: 'revise', review: { ...review, decision: 'rejected' } }),
];

const WORKING = ['preparing', 'generating', 'applying', 'testing', 'correcting', 'exhausted', 'committing', 'landing', 'discarding'] as const;
const id = (state: string) => invokeId(workerMachine, state === 'releasing' ? 'worker.releasing' : `worker.working.${state}`);
/** A worker snapshot's state by name (`generating`, not `{ working: 'generating' }`). */
const nameOf = (s: WorkerSnapshot) => workerStateName(s.value);
const fault = { message: 'disk gone' };
const TEST_OUTPUTS: TestOutput[] = [
  { status: 'passed', summary: 'ok', excerpt: '' },
  { status: 'failed', summary: '1 failed', excerpt: 'AssertionError' },
  { status: 'no_tests', summary: 'no tests found', excerpt: '' },
  { status: 'failed', summary: '1 failed', excerpt: 'AssertionError', preexisting: ['old test'] },
];
/** Representative outcomes of each state's effect. */
const OUTCOMES: Record<string, AnyEvent[]> = {
  preparing: [doneEvent(id('preparing'), { treePath: '/tree' }), errorEvent(id('preparing'), fault)],
  generating: [
    doneEvent(id('generating'), { kind: 'proposal', callKey: 'k', fileCount: 1 }),
    doneEvent(id('generating'), { kind: 'invalid', callKey: 'k', reason: 'no tool call' }),
    doneEvent(id('generating'), { kind: 'budget_exhausted', spentUsd: 2, budgetUsd: 1 }),
    errorEvent(id('generating'), { message: '529 overloaded' }),
    errorEvent(id('generating'), { message: '401 invalid x-api-key', fatal: true }),
  ],
  applying: [
    doneEvent(id('applying'), { kind: 'applied', files: ['a.js'] }),
    doneEvent(id('applying'), { kind: 'rejected', reason: 'path escapes the workspace' }),
    errorEvent(id('applying'), fault),
  ],
  testing: [...TEST_OUTPUTS.map((o) => doneEvent(id('testing'), o)), errorEvent(id('testing'), fault)],
  correcting: [doneEvent(id('correcting'), undefined), errorEvent(id('correcting'), fault)],
  exhausted: [doneEvent(id('exhausted'), { keptOn: null }), doneEvent(id('exhausted'), { keptOn: 'troupe/work' }), errorEvent(id('exhausted'), fault)],
  committing: [
    doneEvent(id('committing'), { kind: 'committed', sha: 'sha', files: ['a.js'] }),
    doneEvent(id('committing'), { kind: 'review', review }),
    doneEvent(id('committing'), { kind: 'conflict', detail: 'CONFLICT in a.js' }),
    errorEvent(id('committing'), fault),
  ],
  landing: [
    doneEvent(id('landing'), { kind: 'committed', sha: 'sha', files: ['package.json'] }),
    doneEvent(id('landing'), { kind: 'conflict', detail: 'CONFLICT in package.json' }),
    errorEvent(id('landing'), fault),
  ],
  discarding: [doneEvent(id('discarding'), { callKey: 'k0' }), errorEvent(id('discarding'), fault)],
  releasing: [doneEvent(id('releasing'), undefined), errorEvent(id('releasing'), fault)],
};

function workerEvents(s: WorkerSnapshot): AnyEvent[] {
  const name = nameOf(s);
  if (name === 'idle') return JOBS.map((j) => ({ type: 'ASSIGN', job: j }));
  const outcomes = OUTCOMES[name] ?? [];
  return name === 'releasing' ? outcomes : [...outcomes, { type: 'CANCEL' }];
}

/**
 * Every simple path of one job, from idle back to idle. Every return to idle is one vertex
 * (`idle:end`) where traversal stops, so a path is one job from its ASSIGN to its end.
 */
function workerPaths(agentType: AgentType) {
  const pure = pureMachine(workerMachine, { agentId: `${agentType}-1`, agentType });
  const ended = (s: WorkerSnapshot) => nameOf(s) === 'idle' && s !== pure.initial;
  const options = {
    events: workerEvents as (s: WorkerSnapshot) => never[],
    fromState: pure.initial,
    serializeState: (s: WorkerSnapshot, e: unknown) => (nameOf(s) === 'idle' && e !== undefined ? 'idle:end' : stateKey(s)),
    stopWhen: ended,
  };
  const paths = getSimplePaths(pure.logic, { ...options, toState: ended }) as StatePath<WorkerSnapshot, AnyEvent>[];
  /** One shortest path to every distinct state (value and context). */
  const states = getShortestPaths(pure.logic, options) as StatePath<WorkerSnapshot, AnyEvent>[];
  const walked = paths.map((p) => walk<WorkerSnapshot, AnyEvent>(p, pure.step));
  return { pure, paths, walked, states: states.map((p) => p.state) };
}

const TYPES: AgentType[] = ['backend', 'test'];
const model = Object.fromEntries(TYPES.map((t) => [t, workerPaths(t)])) as Record<AgentType, ReturnType<typeof workerPaths>>;

const reportsOf = (step: Walked<WorkerSnapshot, AnyEvent>) =>
  step.sent.filter((e): e is EventObject & { outcome: WorkerOutcome } => e.type === 'WORKER.REPORT');
const describePath = (path: Walked<WorkerSnapshot, AnyEvent>[]) =>
  path.map((s) => `${s.event.type.replace(/\.0\.worker\.(working\.)?/, ' ')}${s.event.output ? ` ${JSON.stringify(s.event.output)}` : ''} → ${nameOf(s.state)}`).join('\n  ');

describe.each(TYPES)('worker paths (%s agent)', (agentType) => {
  const { walked, states, pure } = model[agentType];

  it('generates every job path through every working state', () => {
    expect(walked.length).toBeGreaterThan(500);
    const visited = new Set(walked.flatMap((p) => p.map((s) => nameOf(s.state))));
    for (const state of [...WORKING, 'releasing', 'idle']) expect(visited, state).toContain(state);
  });

  it('reaches committing, or reports completed, only after an accepted test result of the last change', () => {
    for (const path of walked) {
      const j = path[0]!.event.job!;
      /** The last test result since the last applied change (null: none yet). */
      let tested: TestOutput | null = null;
      for (const step of path) {
        const output = step.event.output;
        if (step.event.type === `xstate.done.actor.${id('applying')}`) tested = null;
        if (step.event.type === `xstate.done.actor.${id('testing')}`) tested = output as TestOutput;
        const accepted = tested !== null && (testsAccepted(tested.status, agentType) || (tested.preexisting?.length ?? 0) > 0);
        const why = `path:\n  ${describePath(path)}`;
        if (nameOf(step.state) === 'committing') expect(accepted, why).toBe(true);
        for (const report of reportsOf(step)) {
          if (report.outcome.kind !== 'completed') continue;
          if (j.mode === 'land') {
            // Tested before the review: verified only as the review says.
            expect(nameOf(step.before), why).toBe('landing');
            expect(report.outcome.verified, why).toBe(j.review?.verified);
          } else {
            expect(accepted, why).toBe(true);
            expect(report.outcome.verified, why).toBe(tested?.status === 'passed');
          }
        }
      }
    }
  });

  it('CANCEL from every working state leads to idle through releasing, with no effect left running', () => {
    const working = states.filter((s) => (WORKING as readonly string[]).includes(nameOf(s)));
    expect(working.length).toBeGreaterThan(50);
    for (const s of working) {
      expect(Object.keys(s.children), stateKey(s)).toEqual([id(nameOf(s))]);
      const released = pure.transition(s, { type: 'CANCEL' });
      expect(nameOf(released), stateKey(s)).toBe('releasing');
      expect(Object.keys(released.children)).toEqual([id('releasing')]);
      for (const end of OUTCOMES.releasing!) {
        const idle = pure.transition(released, end);
        expect(nameOf(idle)).toBe('idle');
        expect(idle.children).toEqual({});
        expect(idle.context.job).toBeNull();
      }
      // The next job may come before the release is done: only its preparation runs.
      const next = pure.transition(released, { type: 'ASSIGN', job: job('next') } as AnyEvent);
      expect(nameOf(next)).toBe('preparing');
      expect(Object.keys(next.children)).toEqual([id('preparing')]);
    }
    // And on every generated path: idle has no effect running, any other state exactly its own.
    for (const path of walked) {
      for (const step of path) {
        const expected = nameOf(step.state) === 'idle' ? [] : [id(nameOf(step.state))];
        expect(Object.keys(step.state.children), describePath(path)).toEqual(expected);
        if (step.event.type === 'CANCEL') expect(nameOf(step.state)).toBe('releasing');
      }
    }
  });

  it('never starts more than 1 + maxCorrections attempts', () => {
    let longest = 0;
    for (const path of walked) {
      const announced = path.flatMap((s) => s.sent).filter((e) => e.type === 'WORKER.ATTEMPT');
      expect(announced.length, describePath(path)).toBeLessThanOrEqual(1 + MAX_CORRECTIONS);
      for (const step of path) {
        if (step.state.context.job) expect(step.state.context.attempt, describePath(path)).toBeLessThanOrEqual(1 + MAX_CORRECTIONS);
      }
      longest = Math.max(longest, announced.length);
    }
    // The bound is reached, not only respected.
    expect(longest).toBe(1 + MAX_CORRECTIONS);
  });

  it('every snapshot on every path survives a JSON round-trip and restores to the same state', () => {
    const seen = new Set<string>();
    for (const path of walked) {
      for (const { state } of path) {
        const key = stateKey(state);
        if (seen.has(key)) continue;
        seen.add(key);
        const persisted = workerMachine.getPersistedSnapshot(state);
        const stored: unknown = JSON.parse(JSON.stringify(persisted));
        const restored = createActor(workerMachine, { snapshot: stored as never, input: { agentId: `${agentType}-1`, agentType } }).getSnapshot();
        expect(restored.value, key).toEqual(state.value);
        // toEqual: a key whose value is undefined (an intent's optional `detail`) is absent after JSON, and means the same.
        expect(restored.context, key).toEqual(state.context);
        expect(Object.keys(restored.children), key).toEqual(Object.keys(state.children));
        expect(JSON.parse(JSON.stringify(workerMachine.getPersistedSnapshot(restored)))).toEqual(stored);
      }
    }
    expect(seen.size).toBeGreaterThan(100);
  });

  it('every snapshot on every path, restored from JSON, continues along the rest of the path to the same end and reports', () => {
    // Each distinct snapshot is restored once (the same value and context restore alike, see above)
    // and replayed along the rest of the first path it is on.
    const seen = new Set<string>();
    for (const path of walked) {
      const end = stateKey(path.at(-1)!.state);
      for (let i = 0; i < path.length; i++) {
        const key = stateKey(path[i]!.state);
        if (seen.has(key)) continue;
        seen.add(key);
        let s = pure.restore(JSON.parse(JSON.stringify(workerMachine.getPersistedSnapshot(path[i]!.state))));
        for (let k = i + 1; k < path.length; k++) {
          const { next, sent } = pure.step(s, path[k]!.event);
          expect(sent, describePath(path)).toEqual(path[k]!.sent);
          s = next;
        }
        expect(stateKey(s), describePath(path)).toBe(end);
      }
    }
    expect(seen.size).toBeGreaterThan(100);
  });
});

// The lead: two tasks (b depends on a), workers' reports as events, the writer's persist as a
// done or error event. Bounded: only `a` can be retried, once; a worker can crash while fewer
// than two workers were ever created.
const LEAD_INPUT = { projectId: 'p', runId: 'r', goal: null, start: 'running' as const, settings: settings({ maxConcurrency: 2 }), tasks: [task('a'), task('b', ['a'])] };
const leadId = (state: string) => invokeId(leadMachine, `lead.${state}`);
const LEAD_WRITES = { finishing: leadId('finishing'), cancelling: leadId('cancelling'), failing: leadId('failing') } as const;

function persistOutcomes(s: LeadSnapshot, invoke: string): AnyEvent[] {
  return [doneEvent(invoke, { results: s.context.batch.map(() => ({ applied: true })) }), errorEvent(invoke, { message: 'database down' })];
}

function leadEvents(s: LeadSnapshot): AnyEvent[] {
  const out: AnyEvent[] = [];
  const value = s.value;
  if (value === 'preflight') {
    const pre = leadId('preflight');
    out.push(doneEvent(pre, { kind: 'ready', baseline: null }), doneEvent(pre, { kind: 'refused', reason: 'not a git repository' }), errorEvent(pre, { message: 'spawn failed' }));
  }
  if (typeof value === 'string' && value in LEAD_WRITES) out.push(...persistOutcomes(s, LEAD_WRITES[value as keyof typeof LEAD_WRITES]));
  const active = typeof value === 'object' && 'active' in value;
  if (active && s.matches({ active: { writer: 'writing' } })) out.push(...persistOutcomes(s, leadId('active.writer.writing')));
  const created = Object.values(s.context.workerSeq).reduce((a, b) => a + b, 0);
  for (const t of Object.values(s.context.tasks)) {
    const slot = t.agentId ? s.context.workers[t.agentId] : undefined;
    if (active && t.status === 'in_progress' && slot?.working) {
      const report = (outcome: WorkerOutcome): AnyEvent => ({ type: 'WORKER.REPORT', agentId: slot.agentId, taskId: t.id, key: t.key, epoch: t.epoch, outcome } as AnyEvent);
      out.push(
        report({ kind: 'completed', commit: 'sha', files: ['a.js'], verified: true }),
        report({ kind: 'blocked', reason: 'attempts_exhausted', detail: '3 attempt(s) failed' }),
        report({ kind: 'failed', detail: 'disk gone' }),
      );
      if (!t.review) out.push(report({ kind: 'review', review }));
      if (created < 2) out.push(errorEvent(slot.agentId, { message: 'worker bug' }));
    }
    if (typeof value !== 'object') continue;
    // Offered for every task, whatever its status: the guards decide (a completed task stays completed).
    if (active) out.push({ type: 'CANCEL_TASK', key: t.key } as AnyEvent);
    if (['failed', 'blocked', 'cancelled'].includes(t.status) && t.key === 'a' && t.epoch < 1) out.push({ type: 'RETRY', key: t.key } as AnyEvent);
    if (t.status === 'review') out.push({ type: 'REVIEW', key: t.key, decision: 'rejected', guidance: 'use x' } as AnyEvent);
    out.push({ type: 'REVIEW', key: t.key, decision: 'approved' } as AnyEvent);
  }
  if (value === 'preflight' || typeof value === 'object') out.push({ type: 'CANCEL' });
  return out;
}

describe('lead paths', () => {
  const pure = pureMachine(leadMachine, LEAD_INPUT);
  /** One shortest path to every distinct reachable state (value and context). */
  const paths = getShortestPaths(pure.logic, {
    events: leadEvents as (s: LeadSnapshot) => never[],
    fromState: pure.initial,
    serializeState: (s: LeadSnapshot) => stateKey(s),
  }) as StatePath<LeadSnapshot, AnyEvent>[];
  const states = paths.map((p) => p.state);

  it('is completed or blocked only with nothing in flight: no task in progress, no worker at work', () => {
    const ended = states.filter((x) => x.value === 'completed' || (typeof x.value === 'object' && 'blocked' in x.value));
    expect(ended.length).toBeGreaterThan(0);
    for (const s of ended) {
      expect(Object.values(s.context.tasks).filter((t) => t.status === 'in_progress'), stateKey(s)).toEqual([]);
      expect(Object.values(s.context.workers).filter((w) => w.working), stateKey(s)).toEqual([]);
    }
  });

  it('reaches completed only when every task is completed', () => {
    expect(states.length).toBeGreaterThan(5000);
    const completed = states.filter((s) => s.value === 'completed');
    expect(completed.length).toBeGreaterThan(0);
    for (const path of paths) {
      for (const step of path.steps) {
        if (step.state.value !== 'completed') continue;
        const tasks = Object.values(step.state.context.tasks);
        expect(tasks.map((t) => `${t.key}: ${t.status}`), path.steps.map((s) => s.event.type).join(' → ')).toEqual(tasks.map((t) => `${t.key}: completed`));
      }
    }
    // A completed task stays completed, whatever comes after (cancels, reviews, retries, crashes).
    for (const path of paths) {
      const done = new Set<string>();
      for (const step of path.steps) {
        for (const key of done) expect(step.state.context.tasks[key]?.status, path.steps.map((s) => s.event.type).join(' → ')).toBe('completed');
        for (const t of Object.values(step.state.context.tasks)) if (t.status === 'completed') done.add(t.key);
      }
    }
    // And finishing with a task not completed ends blocked, not completed.
    const blocked = states.filter((s) => typeof s.value === 'object' && 'blocked' in s.value);
    expect(blocked.some((s) => Object.values(s.context.tasks).some((t) => t.status !== 'completed'))).toBe(true);
  });

  it('every reachable lead snapshot (with its workers) survives a JSON round-trip and restores to the same state', () => {
    for (const state of states) {
      const stored: unknown = JSON.parse(JSON.stringify(leadMachine.getPersistedSnapshot(state)));
      const restored = createActor(leadMachine, { snapshot: stored as never, input: LEAD_INPUT }).getSnapshot();
      const key = stateKey(state);
      expect(restored.value, key).toEqual(state.value);
      // toEqual: a key whose value is undefined (an intent's optional `detail`) is absent after JSON, and means the same.
      expect(restored.context, key).toEqual(state.context);
      expect(Object.keys(restored.children).sort(), key).toEqual(Object.keys(state.children).sort());
    }
  });
  it('CANCEL from every state of a live run cancels every open task, tells every working worker to cancel, and ends cancelled', () => {
    const live = states.filter((s) => s.value === 'preflight' || (typeof s.value === 'object' && ('active' in s.value || 'blocked' in s.value)));
    expect(live.length).toBeGreaterThan(1000);
    for (const state of live) {
      const key = stateKey(state);
      const { next, toChildren } = pure.step(state, { type: 'CANCEL' });
      expect(next.value, key).toBe('cancelling');
      // Every worker that holds a job is told, and only those (by the worker paths, CANCEL ends
      // it idle through releasing, with nothing running).
      const working = Object.values(state.context.workers).filter((w) => w.working).map((w) => w.agentId).sort();
      expect(toChildren.filter((c) => c.event.type === 'CANCEL').map((c) => c.to).sort(), key).toEqual(working);
      expect(Object.values(next.context.workers).some((w) => w.working || w.taskKey !== null), key).toBe(false);
      // The lead's own effects: only the write of the cancel.
      expect(Object.keys(next.children).filter((id) => parseWorkerId(id) === null), key).toEqual([LEAD_WRITES.cancelling]);
      const end = pure.transition(next, persistOutcomes(next, LEAD_WRITES.cancelling)[0]!);
      expect(end.value, key).toBe('cancelled');
      // A final state: the actor is done, and its system stops every child with it.
      expect(end.status, key).toBe('done');
      for (const t of Object.values(end.context.tasks)) expect(['pending', 'in_progress', 'review'], `${key} ${t.key}`).not.toContain(t.status);
    }
  });

  it('every reachable lead snapshot, restored from JSON, continues along the rest of its path to the same state', () => {
    // Each distinct snapshot is restored once and replayed along the rest of the first path it is on.
    const seen = new Set<string>();
    for (const path of paths) {
      const end = stateKey(path.state);
      for (let i = 0; i < path.steps.length; i++) {
        const key = stateKey(path.steps[i]!.state);
        if (seen.has(key)) continue;
        seen.add(key);
        let s = pure.restore(JSON.parse(JSON.stringify(leadMachine.getPersistedSnapshot(path.steps[i]!.state))));
        for (const step of path.steps.slice(i + 1)) s = pure.transition(s, step.event);
        expect(stateKey(s), key).toBe(end);
      }
    }
    expect(seen.size).toBe(states.length);
  });
});
