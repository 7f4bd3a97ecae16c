/**
 * Time travel over a real run's event log: folded to its end, the log agrees with what the API says
 * now (every task's status and attempts, every actor's state); folded to an earlier event it shows
 * the earlier statuses; and any prefix gives the same world as folding it event by event.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { moduleWithTest } from '../support/replies.ts';
import { startTestRuntime, type TestRuntime } from '../support/runtime.ts';
import { applyEvent, emptyWorld, worldAt, type LogEvent } from '../../web/src/replay.ts';

let t: TestRuntime | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('time travel', () => {
  it('the log folded to its end is what the API says; folded to an earlier event, the earlier statuses', async () => {
    // b's first answer fails its own test, so b is corrected: two attempts.
    let bAsked = 0;
    t = await startTestRuntime((req) => {
      if (req.taskKey === 'b') bAsked++;
      return moduleWithTest(req.taskKey!, req.taskKey === 'b' && bAsked === 1 ? 'wrong' : 'ok', 'ok');
    });
    const projectId = await t.project({ name: 'replay', testCommand: 'node --test' });
    await t.addTasks(projectId, [
      { key: 'a', title: 'A', description: '' },
      { key: 'b', title: 'B', description: '', dependsOn: ['a'] },
      { key: 'c', title: 'C', description: '', dependsOn: ['a'] },
    ]);
    const run = await t.runtime.startRun(projectId);
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.completed');
    // The lead's move to its final state is told after run.completed.
    await t.waitForEvent(projectId, (e) => e.type === 'agent.state_changed' && (e.data).agentId === 'lead' && (e.data as { state: unknown }).state === 'completed');
    const log = (await t.events(projectId)) as unknown as LogEvent[];

    const end = worldAt(log);
    const tasks = await t.runtime.listTasks(projectId);
    expect([...end.tasks.values()].map((x) => [x.key, x.status, x.attempt])).toEqual(tasks.map((x) => [x.key, x.status, x.attempts]));
    expect(end.tasks.get('b')!.attempt).toBe(2);
    expect(end.runStatus).toBe('completed');
    const actors = await t.runtime.listActors(projectId);
    expect(actors.length).toBeGreaterThan(1);
    for (const a of actors) {
      expect(a.state, a.id).toBeDefined();
      expect(end.actors.get(a.id), a.id).toEqual(a.state);
    }

    // Right after b first went in progress: a completed, b in flight, c not done yet.
    const bStarted = log.find((e) => e.type === 'task.status_changed' && e.data.key === 'b' && e.data.to === 'in_progress')!;
    const then = worldAt(log, bStarted.seq);
    expect(then.tasks.get('a')!.status).toBe('completed');
    expect(then.tasks.get('b')!.status).toBe('in_progress');
    expect(then.tasks.get('c')!.status).not.toBe('completed');
    // Before anything ran, every task was pending.
    const firstStart = log.find((e) => e.type === 'task.status_changed')!;
    expect([...worldAt(log, firstStart.seq - 1).tasks.values()].map((x) => x.status)).toEqual(['pending', 'pending', 'pending']);

    // Live (event by event) and replayed (in one go) agree at every point.
    const live = emptyWorld();
    for (const e of log) {
      applyEvent(live, e);
      const replayed = worldAt(log, e.seq);
      expect({ seq: e.seq, tasks: [...live.tasks.values()] }).toEqual({ seq: e.seq, tasks: [...replayed.tasks.values()] });
    }
  });
});
