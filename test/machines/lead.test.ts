import { describe, expect, it } from 'vitest';
import { createActor, waitFor, type StateValue } from 'xstate';
import { fakeLead, settings, task } from '../support/fake-effects.ts';
import { workerStateName } from '../../src/machines/worker.ts';

const final = (s: { status: string; value: unknown }) => s.status === 'done' || (typeof s.value === 'object' && s.value !== null && 'blocked' in s.value);

describe('lead machine (fake effects)', () => {
  it('runs a dependency graph to completed, never more than maxConcurrency at once, dependencies first', async () => {
    const tasks = [task('a'), task('b'), task('c', ['a']), task('d', ['a', 'b']), task('e', ['c']), task('f', ['d', 'e']), task('g')];
    const h = fakeLead({ settings: settings({ maxConcurrency: 2 }), tasks });
    h.actor.start();
    const snap = await waitFor(h.actor, final);
    expect(snap.value).toBe('completed');
    expect(h.maxLive).toBeLessThanOrEqual(2);
    const order = h.intents().filter((i) => i.type === 'assign' || i.type === 'complete');
    for (const t of tasks) {
      const assignedAt = order.findIndex((i) => i.type === 'assign' && i.key === t.key);
      for (const dep of t.dependsOn) {
        const completedAt = order.findIndex((i) => i.type === 'complete' && i.key === dep);
        expect(completedAt, `${dep} completes before ${t.key} starts`).toBeLessThan(assignedAt);
      }
    }
    expect(h.intents().at(-1)).toEqual({ type: 'run', status: 'completed', summary: 'all 7 task(s) completed', knownKeys: tasks.map((t) => t.key) });
  });

  it('corrects a failing attempt: testing → correcting → generating, then completes', async () => {
    const h = fakeLead({ settings: settings(), tasks: [task('a')] }, { steps: { a: ['failed', 'passed'] } });
    h.actor.start();
    await waitFor(h.actor, final);
    expect(h.actor.getSnapshot().value).toBe('completed');
    expect(h.calls.map((c) => c.attempt)).toEqual([1, 2]);
    expect(h.workerStates['backend-1']).toEqual([
      'idle', 'preparing', 'generating', 'applying', 'testing', 'correcting', 'generating', 'applying', 'testing', 'committing', 'idle',
    ]);
    expect(h.corrections).toHaveLength(1);
    expect(h.corrections[0]!.failure).toMatchObject({ kind: 'tests_failed', excerpt: 'AssertionError: 1 !== 2' });
    expect(h.intents().filter((i) => i.type === 'attempt').map((i) => (i as { attempt: number }).attempt)).toEqual([1, 2]);
  });

  it('blocks a task after 1 + maxCorrections generations, blocks its dependents, and a retry completes them', async () => {
    const steps = { a: ['failed', 'failed', 'failed', 'passed'] as const };
    const h = fakeLead(
      { settings: settings({ maxCorrections: 2 }), tasks: [task('a'), task('b', ['a']), task('c', ['b']), task('x')] },
      { steps: { a: [...steps.a] } },
    );
    h.actor.start();
    await waitFor(h.actor, final);
    const ctx = h.actor.getSnapshot().context;
    expect(h.actor.getSnapshot().value).toEqual({ blocked: 'stalled' });
    expect(h.calls.filter((c) => c.key === 'a')).toHaveLength(3);
    expect(ctx.tasks.a).toMatchObject({ status: 'blocked', blockedReason: 'attempts_exhausted' });
    expect(ctx.tasks.b).toMatchObject({ status: 'blocked', blockedReason: 'dependency_failed' });
    expect(ctx.tasks.c).toMatchObject({ status: 'blocked', blockedReason: 'dependency_failed' });
    expect(ctx.tasks.x!.status).toBe('completed');
    expect(h.giveUps).toHaveLength(1);
    expect(ctx.summary).toContain('1 of 4 task(s) completed');

    // Retry: a fresh epoch starts at attempt 1; the fake's 4th step for `a` passes.
    expect(h.actor.getSnapshot().can({ type: 'RETRY', key: 'x' })).toBe(false);
    // c is blocked behind b, itself behind a: retrying c re-queues a (the root) as well.
    expect(h.actor.getSnapshot().can({ type: 'RETRY', key: 'c' })).toBe(true);
    expect(h.actor.getSnapshot().can({ type: 'RETRY', key: 'a', guidance: 'try harder' })).toBe(true);
    h.actor.send({ type: 'RETRY', key: 'c', guidance: 'try harder' });
    const requeued = h.intents().filter((i) => i.type === 'requeue');
    expect(requeued).toEqual([
      { type: 'requeue', taskId: 'id-a', key: 'a', newEpoch: true, guidance: undefined },
      { type: 'requeue', taskId: 'id-c', key: 'c', newEpoch: true, guidance: 'try harder' },
      { type: 'requeue', taskId: 'id-b', key: 'b', newEpoch: false },
    ]);
    await waitFor(h.actor, (s) => s.status === 'done');
    expect(h.actor.getSnapshot().value).toBe('completed');
    expect(h.intents()).toContainEqual({ type: 'run', status: 'running' });
  });

  it('cancelling a task during a hanging generation aborts the call and nothing writes it back', async () => {
    const h = fakeLead({ settings: settings(), tasks: [task('a'), task('b', ['a'])] }, { hang: new Set(['a']) });
    h.actor.start();
    await h.started('generate', 'a');
    h.actor.send({ type: 'CANCEL_TASK', key: 'a' });
    expect(h.calls[0]!.aborted).toBe(true);
    const snap = await waitFor(h.actor, final);
    expect(snap.value).toEqual({ blocked: 'stalled' });
    expect(snap.context.tasks.a!.status).toBe('cancelled');
    expect(snap.context.tasks.b).toMatchObject({ status: 'blocked', blockedReason: 'dependency_failed' });
    const aIntents = h.intents().filter((i) => 'key' in i && i.key === 'a').map((i) => i.type);
    expect(aIntents).toEqual(['assign', 'attempt', 'cancel']);
  });

  it.each(['generating', 'applying', 'testing', 'correcting'] as const)('cancelling the run while a worker is %s ends everything cancelled', async (state) => {
    const h = fakeLead(
      { settings: settings(), tasks: [task('a'), task('b', ['a'])] },
      {
        steps: { a: state === 'correcting' ? ['failed', 'passed'] : ['passed'] },
        hang: state === 'generating' ? new Set(['a']) : undefined,
        hangApply: state === 'applying' ? new Set(['a']) : undefined,
        hangTests: state === 'testing' ? new Set(['a']) : undefined,
        hangCorrect: state === 'correcting' ? new Set(['a']) : undefined,
      },
    );
    h.actor.start();
    const effect = ({ generating: 'generate', applying: 'apply', testing: 'test', correcting: 'correct' } as const)[state];
    const call = await h.started(effect, 'a');
    const worker = h.actor.getSnapshot().children['backend-1'] as { getSnapshot(): { value: StateValue } };
    expect(workerStateName(worker.getSnapshot().value)).toBe(state);
    h.actor.send({ type: 'CANCEL' });
    expect(call.aborted).toBe(true);
    const snap = await waitFor(h.actor, (s) => s.status === 'done');
    expect(snap.value).toBe('cancelled');
    expect(snap.context.tasks.a!.status).toBe('cancelled');
    expect(snap.context.tasks.b!.status).toBe('cancelled');
    expect(h.intents().at(-1)).toEqual({ type: 'run', status: 'cancelled' });
    expect(h.intents().filter((i) => i.type === 'complete')).toEqual([]);
  });

  it('pause while generating: in-flight work finishes, nothing new starts, resume continues', async () => {
    const h = fakeLead({ settings: settings({ maxConcurrency: 1 }), tasks: [task('a'), task('b')] }, { hang: new Set(['a']) });
    h.actor.start();
    await h.started('generate', 'a');
    h.actor.send({ type: 'PAUSE' });
    expect(h.actor.getSnapshot().matches({ active: { schedule: 'pausing' } })).toBe(true);
    expect(h.actor.getSnapshot().can({ type: 'PAUSE' })).toBe(false);
    h.calls[0]!.release.resolve();
    await waitFor(h.actor, (s) => s.matches({ active: { schedule: 'paused' } }) && s.matches({ active: { writer: 'idle' } }));
    expect(h.statusOf('a')).toBe('completed');
    expect(h.statusOf('b')).toBe('pending');
    expect(h.calls).toHaveLength(1);
    expect(h.intents().filter((i) => i.type === 'run')).toEqual([
      { type: 'run', status: 'pausing' },
      { type: 'run', status: 'paused' },
    ]);
    h.actor.send({ type: 'RESUME' });
    const snap = await waitFor(h.actor, (s) => s.status === 'done');
    expect(snap.value).toBe('completed');
  });

  it('budget exhausted: the task is budget_exhausted, nothing more starts, the run is blocked; raising the budget resumes it', async () => {
    const h = fakeLead(
      { settings: settings({ maxConcurrency: 1, budgetUsd: 1 }), tasks: [task('a'), task('b')] },
      { steps: { a: ['budget', 'passed'] } },
    );
    h.actor.start();
    const snap = await waitFor(h.actor, final);
    expect(snap.value).toEqual({ blocked: 'stalled' });
    expect(snap.context.tasks.a).toMatchObject({ status: 'blocked', blockedReason: 'budget_exhausted' });
    expect(snap.context.tasks.b!.status).toBe('pending');
    expect(h.intents()).toContainEqual({ type: 'budget', spentUsd: 2, budgetUsd: 1 });
    expect(snap.context.summary).toMatch(/^budget exhausted/);

    h.actor.send({ type: 'SETTINGS_UPDATED', settings: settings({ maxConcurrency: 1, budgetUsd: 5 }) });
    const done = await waitFor(h.actor, (s) => s.status === 'done');
    expect(done.value).toBe('completed');
  });

  it('a fatal model error fails the task (no corrections) and blocks its dependents', async () => {
    const h = fakeLead({ settings: settings(), tasks: [task('a'), task('b', ['a'])] }, { steps: { a: ['fatal'] } });
    h.actor.start();
    const snap = await waitFor(h.actor, final);
    expect(snap.context.tasks.a!.status).toBe('failed');
    expect(h.calls).toHaveLength(1);
    expect(h.intents()).toContainEqual({ type: 'fail', taskId: 'id-a', key: 'a', detail: '401 invalid x-api-key' });
    expect(snap.context.tasks.b!.blockedReason).toBe('dependency_failed');
  });

  it('invalid answers, refused files and model errors are failed attempts that get corrected', async () => {
    const h = fakeLead({ settings: settings({ maxCorrections: 3 }), tasks: [task('a')] }, { steps: { a: ['invalid', 'rejected', 'model_error', 'passed'] } });
    h.actor.start();
    const snap = await waitFor(h.actor, final);
    expect(snap.value).toBe('completed');
    expect(h.corrections.map((c) => c.failure.kind)).toEqual(['invalid_answer', 'files_rejected', 'model_error']);
  });

  it('a merge conflict blocks the task with merge_conflict', async () => {
    const h = fakeLead({ settings: settings(), tasks: [task('a')] }, { steps: { a: ['conflict'] } });
    h.actor.start();
    const snap = await waitFor(h.actor, final);
    expect(snap.context.tasks.a).toMatchObject({ status: 'blocked', blockedReason: 'merge_conflict' });
  });

  it('keeps at most maxAgents workers, reusing idle ones by type and retiring an idle one of another type', async () => {
    const tasks = [
      task('b1', [], { agentType: 'backend' }),
      task('b2', [], { agentType: 'backend' }),
      task('f1', ['b1', 'b2'], { agentType: 'frontend' }),
      task('t1', ['f1'], { agentType: 'test' }),
      task('b3', ['t1'], { agentType: 'backend' }),
    ];
    const h = fakeLead({ settings: settings({ maxAgents: 2, maxConcurrency: 2 }), tasks });
    h.actor.start();
    const snap = await waitFor(h.actor, final);
    expect(snap.value).toBe('completed');
    const assigns = h.intents().filter((i) => i.type === 'assign').map((i) => `${i.key}@${(i as { agentId: string }).agentId}`);
    expect(assigns).toEqual(['b1@backend-1', 'b2@backend-2', 'f1@frontend-1', 't1@test-1', 'b3@backend-3']);
    expect(h.intents().filter((i) => i.type === 'retire').map((i) => (i as { agentId: string }).agentId)).toEqual([
      'backend-1',
      'backend-2',
      'frontend-1',
    ]);
    expect(Object.keys(snap.context.workers).length).toBeLessThanOrEqual(2);
  });

  it('a worker actor that crashes fails its task (with the reason) and the run still ends', async () => {
    const h = fakeLead({ settings: settings(), tasks: [task('a'), task('b', ['a']), task('c')] }, { steps: { a: ['failed'] }, crashWorker: true });
    h.actor.start();
    const snap = await waitFor(h.actor, final);
    expect(snap.value).toEqual({ blocked: 'stalled' });
    expect(snap.context.tasks.a!.status).toBe('failed');
    expect(snap.context.tasks.b!.blockedReason).toBe('dependency_failed');
    expect(snap.context.tasks.c!.status).toBe('completed');
    const fail = h.intents().find((i) => i.type === 'fail') as { key: string; detail: string } | undefined;
    expect(fail?.key).toBe('a');
    expect(fail?.detail).toMatch(/^worker backend-\d crashed: .*boom/);
  });

  it('does not end the run while the project has tasks the lead did not know: it takes them and goes on', async () => {
    const h = fakeLead({ settings: settings(), tasks: [task('a')] }, { foundOnFinish: [task('late', ['a'])] });
    h.actor.start();
    const snap = await waitFor(h.actor, (s) => s.status === 'done');
    expect(snap.value).toBe('completed');
    expect(snap.context.tasks.late!.status).toBe('completed');
    const runs = h.intents().filter((i) => i.type === 'run');
    expect(runs.map((r) => (r as { status: string }).status)).toEqual(['completed', 'completed']);
    expect((runs[1] as { knownKeys: string[] }).knownKeys).toEqual(['a', 'late']);
  });

  it('plans from a goal, then runs the plan', async () => {
    const h = fakeLead(
      { settings: settings(), tasks: [], goal: 'build it', start: 'plan' },
      { plan: async () => ({ kind: 'planned', tasks: [task('p1'), task('p2', ['p1'])] }) },
    );
    h.actor.start();
    const snap = await waitFor(h.actor, final);
    expect(snap.value).toBe('completed');
  });

  it('a refused preflight fails the run with the reason before any model call: no plan, no generation, tasks stay pending', async () => {
    let planned = 0;
    const h = fakeLead(
      { settings: settings(), tasks: [task('a')], goal: 'build it', start: 'plan' },
      {
        preflight: async () => ({ kind: 'refused', reason: 'the test command cannot start: command not found: nonexistent-cmd (not on PATH)' }),
        plan: async () => {
          planned++;
          return { kind: 'planned', tasks: [] };
        },
      },
    );
    h.actor.start();
    const snap = await waitFor(h.actor, (s) => s.status === 'done');
    expect(snap.value).toBe('failed');
    expect(planned).toBe(0);
    expect(h.calls).toHaveLength(0);
    expect(snap.context.tasks.a!.status).toBe('pending');
    expect(h.intents().at(-1)).toEqual({
      type: 'run',
      status: 'failed',
      summary: 'refused before any model call: the test command cannot start: command not found: nonexistent-cmd (not on PATH)',
    });
  });

  it('the baseline of a passed preflight reaches every job, and a run rebuilt paused skips the preflight', async () => {
    const baseline = { commit: 'abc', status: 'failed' as const, failing: ['old > broken'], summary: '1 failed, 2 passed' };
    const h = fakeLead({ settings: settings(), tasks: [task('a')] }, { preflight: async () => ({ kind: 'ready', baseline }) });
    h.actor.start();
    const snap = await waitFor(h.actor, final);
    expect(snap.value).toBe('completed');
    expect(snap.context.baseline).toEqual(baseline);
    expect(h.jobs.map((j) => j.settings.baseline)).toEqual([baseline]);

    let checked = 0;
    const paused = fakeLead({ settings: settings(), tasks: [task('a')], start: 'paused' }, { preflight: async () => (checked++, { kind: 'ready', baseline: null }) });
    paused.actor.start();
    expect(paused.actor.getSnapshot().value).toMatchObject({ active: { schedule: 'paused' } });
    expect(checked).toBe(0);
  });

  it('an invalid plan fails the run with the reason', async () => {
    const h = fakeLead(
      { settings: settings(), tasks: [], goal: 'build it', start: 'plan' },
      { plan: async () => ({ kind: 'invalid', reason: 'cycle: a → b → a' }) },
    );
    h.actor.start();
    const snap = await waitFor(h.actor, (s) => s.status === 'done');
    expect(snap.value).toBe('failed');
    expect(h.intents().at(-1)).toEqual({ type: 'run', status: 'failed', summary: 'planning failed: cycle: a → b → a' });
  });

  it('a lost write race leaves the task as the database has it and frees the worker', async () => {
    let first = true;
    const h = fakeLead(
      { settings: settings({ maxConcurrency: 1 }), tasks: [task('a'), task('b')] },
      {
        persist: (intents) =>
          intents.map((i) => {
            if (first && i.type === 'assign' && i.key === 'a') {
              first = false;
              return { applied: false, status: 'cancelled' };
            }
            return { applied: true };
          }),
      },
    );
    h.actor.start();
    const snap = await waitFor(h.actor, final);
    expect(snap.context.tasks.a!.status).toBe('cancelled');
    expect(snap.context.tasks.b!.status).toBe('completed');
    expect(snap.value).toEqual({ blocked: 'stalled' });
  });

  it('a task the database holds in progress under another agent (left from before a restart) goes back to the queue and runs', async () => {
    let first = true;
    const h = fakeLead(
      { settings: settings({ maxConcurrency: 1 }), tasks: [task('a'), task('b', ['a'])] },
      {
        persist: (intents) =>
          intents.map((i) => {
            if (first && i.type === 'assign' && i.key === 'a') {
              first = false;
              return { applied: false, status: 'in_progress' };
            }
            return { applied: true };
          }),
      },
    );
    h.actor.start();
    const snap = await waitFor(h.actor, final);
    expect(snap.value).toBe('completed');
    const aIntents = h.intents().filter((i) => 'key' in i && i.key === 'a').map((i) => i.type);
    expect(aIntents.slice(0, 3)).toEqual(['assign', 'release', 'assign']);
  });

  it('persisted snapshot survives a JSON round trip and restores in the same state', async () => {
    const h = fakeLead({ settings: settings(), tasks: [task('a'), task('b')] }, { hang: new Set(['a', 'b']) });
    h.actor.start();
    await Promise.all([h.started('generate', 'a'), h.started('generate', 'b')]);
    const persisted = JSON.parse(JSON.stringify(h.actor.getPersistedSnapshot())) as Parameters<typeof createActor>[1] extends infer O
      ? O extends { snapshot?: infer S }
        ? S
        : never
      : never;
    h.actor.stop();
    const restored = createActor(h.machine, { snapshot: persisted, input: undefined });
    restored.start();
    const snap = restored.getSnapshot();
    expect(snap.value).toEqual(h.actor.getSnapshot().value);
    expect(snap.context.tasks.a!.status).toBe('in_progress');
    const worker = snap.children['backend-1'] as { getSnapshot(): { value: StateValue } } | undefined;
    expect(worker?.getSnapshot().value).toEqual({ working: 'generating' });
    expect(JSON.parse(JSON.stringify(restored.getPersistedSnapshot()))).toEqual(persisted);
    restored.stop();
  });
});

describe('lead machine: review', () => {
  it('a change for review waits (dependents too) and the run is blocked awaiting review; approve lands it, then the rest runs', async () => {
    const h = fakeLead({ settings: settings(), tasks: [task('a'), task('b', ['a']), task('x')] }, { steps: { a: ['review'] } });
    h.actor.start();
    let snap = await waitFor(h.actor, final);
    expect(snap.value).toEqual({ blocked: 'awaitingReview' });
    expect(snap.context.tasks.a).toMatchObject({ status: 'review', review: { reason: 'protected_paths', files: ['package.json'], attempt: 1 } });
    expect(snap.context.tasks.b!.status).toBe('pending');
    expect(snap.context.tasks.x!.status).toBe('completed');
    expect(snap.context.summary).toContain('waiting for review (approve or reject): a');
    expect(h.intents()).toContainEqual({ type: 'review', taskId: 'id-a', key: 'a', review: expect.objectContaining({ reason: 'protected_paths' }) as unknown });
    expect(h.workerStates['backend-1']).toContain('committing');
    expect(snap.can({ type: 'REVIEW', key: 'x', decision: 'approved' })).toBe(false);

    h.actor.send({ type: 'REVIEW', key: 'a', decision: 'approved' });
    snap = await waitFor(h.actor, (s) => s.status === 'done');
    expect(snap.value).toBe('completed');
    expect(h.lands.map((l) => [l.job.key, l.job.mode])).toEqual([['a', 'land']]);
    // Only the land effect ran for the approved change: no new generation.
    expect(h.calls.filter((c) => c.key === 'a')).toHaveLength(1);
    const after = h.intents().slice(h.intents().findIndex((i) => i.type === 'decide'));
    expect(after.map((i) => ('key' in i ? `${i.type}:${i.key}` : i.type))).toEqual(['decide:a', 'run', 'assign:a', 'complete:a', 'assign:b', 'attempt:b', 'complete:b', 'run']);
  });

  it('reject with guidance discards the attempt and corrects it; without guidance the task is blocked review_rejected', async () => {
    const h = fakeLead({ settings: settings(), tasks: [task('a'), task('c')] }, { steps: { a: ['review', 'passed'], c: ['review'] } });
    h.actor.start();
    await waitFor(h.actor, final);
    h.actor.send({ type: 'REVIEW', key: 'a', decision: 'rejected', guidance: 'keep package.json' });
    // Back to blocked (c still waits): a decision sent while the run is finishing is not taken.
    await waitFor(h.actor, (s) => s.context.tasks.a!.status === 'completed' && final(s));
    expect(h.discards.map((d) => [d.job.key, d.job.mode, d.job.guidance])).toEqual([['a', 'revise', 'keep package.json']]);
    expect(h.corrections.at(-1)!.failure).toMatchObject({ kind: 'review_rejected' });
    expect(h.calls.filter((c) => c.key === 'a').map((c) => c.attempt)).toEqual([1, 2]);
    expect(h.workerStates[h.actor.getSnapshot().context.tasks.a!.agentId!]).toEqual(expect.arrayContaining(['discarding', 'correcting']));

    h.actor.send({ type: 'REVIEW', key: 'c', decision: 'rejected' });
    const snap = await waitFor(h.actor, (s) => s.context.tasks.c!.status === 'blocked' && final(s));
    expect(snap.context.tasks.c).toMatchObject({ status: 'blocked', blockedReason: 'review_rejected' });
    expect(snap.value).toEqual({ blocked: 'stalled' });
    expect(h.calls.filter((c) => c.key === 'c')).toHaveLength(1);
  });

  it('cancelling the run cancels a task waiting for review', async () => {
    const h = fakeLead({ settings: settings(), tasks: [task('a')] }, { steps: { a: ['review'] } });
    h.actor.start();
    await waitFor(h.actor, final);
    h.actor.send({ type: 'CANCEL' });
    const snap = await waitFor(h.actor, (s) => s.status === 'done');
    expect(snap.value).toBe('cancelled');
    expect(snap.context.tasks.a!.status).toBe('cancelled');
  });
});
