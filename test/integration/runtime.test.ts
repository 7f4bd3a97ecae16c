/**
 * The runtime's operations as the HTTP layer will call them: validation outcomes, races on
 * start, control in each run state, actor views and their persisted snapshots.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LEAD_MACHINE_VERSION } from '../../src/machines/lead.ts';
import { WORKER_MACHINE_VERSION } from '../../src/machines/worker.ts';
import { afterEach, describe, expect, it } from 'vitest';
import type { MessagesRequest } from '../../src/scripted-model/server.ts';
import { deferred } from '../support/deferred.ts';
import { moduleWithTest } from '../support/replies.ts';
import { startTestRuntime, type TestRuntime } from '../support/runtime.ts';

let t: TestRuntime | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const ok = (req: MessagesRequest) => moduleWithTest(req.taskKey!, 'ok');

describe('tasks', () => {
  it('adds tasks atomically: a cycle (with its path) or an unknown dependency is 422 and nothing is added', async () => {
    t = await startTestRuntime(ok);
    const projectId = await t.project({ name: 'graph', testCommand: 'node --test' });
    await t.addTasks(projectId, [{ key: 'a', title: 'A', description: '' }]);
    await expect(
      t.addTasks(projectId, [
        { key: 'b', title: 'B', description: '', dependsOn: ['c'] },
        { key: 'c', title: 'C', description: '', dependsOn: ['b'] },
      ]),
    ).rejects.toMatchObject({ status: 422, code: 'unprocessable', message: expect.stringMatching(/^dependency cycle: (b → c → b|c → b → c)$/) as string });
    await expect(t.addTasks(projectId, [{ key: 'd', title: 'D', description: '', dependsOn: ['ghost'] }])).rejects.toMatchObject({
      status: 422,
      message: 'task "d" depends on unknown task "ghost"',
    });
    await expect(t.addTasks(projectId, [{ key: 'a', title: 'A again', description: '' }])).rejects.toMatchObject({ status: 422 });
    expect((await t.runtime.listTasks(projectId)).map((x) => x.key)).toEqual(['a']);
    expect((await t.events(projectId)).filter((e) => e.type === 'task.created')).toHaveLength(1);
  });

  it('infers the agent type from the text when none is given, and shows tasks in the contract shape', async () => {
    t = await startTestRuntime(ok);
    const projectId = await t.project({ name: 'shape', testCommand: 'node --test' });
    await t.addTasks(projectId, [
      { key: 'ui', title: 'Build the login page', description: 'a form component' },
      { key: 'spec', title: 'Write unit tests', description: '', dependsOn: ['ui'], priority: 0 },
    ]);
    const [ui, spec] = await t.runtime.listTasks(projectId);
    expect(ui).toMatchObject({ key: 'ui', agentType: 'frontend', status: 'pending', attempts: 0, dependsOn: [], priority: 2, commit: null, filesChanged: [] });
    expect(spec).toMatchObject({ key: 'spec', agentType: 'test', dependsOn: ['ui'], priority: 0, blockedReason: null, agentId: null });
    expect(Object.keys(spec!).sort()).toEqual(
      ['agentId', 'agentType', 'attempts', 'blockedReason', 'commit', 'completedAt', 'createdAt', 'dependsOn', 'description', 'filesChanged', 'guidance', 'id', 'key', 'priority', 'projectId', 'reason', 'review', 'startedAt', 'status', 'title', 'verified'].sort(),
    );
    expect(await t.runtime.getTask(projectId, spec!.id)).toMatchObject({ key: 'spec', testResults: [], corrections: [], usage: { inputTokens: 0, costUsd: 0 } });
    await expect(t.runtime.getTask(projectId, 'nope')).rejects.toMatchObject({ status: 404 });
  });
});

describe('workspaces', () => {
  it('with TROUPE_WORKSPACE_ROOT every workspace, the default one included, must resolve inside it', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'troupe-root-'));
    try {
      t = await startTestRuntime(ok, { workspaceRoot: root });
      await expect(t.project({ name: 'default', testCommand: 'node --test' })).rejects.toMatchObject({
        status: 400,
        details: [{ path: 'workspace', message: expect.stringContaining('outside') as string }],
      });
      await expect(t.project({ name: 'out', testCommand: 'node --test', workspace: path.join(root, '..', 'elsewhere') })).rejects.toMatchObject({ status: 400 });
      await expect(t.project({ name: 'sneaky', testCommand: 'node --test', workspace: `${root}-sibling` })).rejects.toMatchObject({ status: 400 });
      // An explicit workspace must exist (a typo is not a new repository).
      await expect(t.project({ name: 'typo', testCommand: 'node --test', workspace: path.join(root, 'calc') })).rejects.toMatchObject({
        status: 422,
        details: [{ path: 'workspace', message: expect.stringContaining('does not exist') as string }],
      });
      await mkdir(path.join(root, 'calc'));
      execFileSync('git', ['init', '-q', '-b', 'main'], { cwd: path.join(root, 'calc') });
      const inside = await t.runtime.getProject(await t.project({ name: 'in', testCommand: 'node --test', workspace: path.join(root, 'calc') }));
      expect(inside.workspace).toBe(path.join(await realpath(root), 'calc'));
      expect(inside.config.isolation).toBe('worktree');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('runs', () => {
  it('two starts at once: exactly one wins, the other is 409; start with nothing to do is 422', async () => {
    t = await startTestRuntime(ok);
    const empty = await t.project({ name: 'empty', testCommand: 'node --test' });
    await expect(t.runtime.startRun(empty)).rejects.toMatchObject({ status: 422 });

    const projectId = await t.project({ name: 'race', testCommand: 'node --test' });
    await t.addTasks(projectId, [{ key: 'a', title: 'A', description: '' }]);
    const results = await Promise.allSettled([t.runtime.startRun(projectId), t.runtime.startRun(projectId)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(rejected.reason).toMatchObject({ status: 409 });
    const run = (results.find((r) => r.status === 'fulfilled') as PromiseFulfilledResult<{ id: string }>).value;
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.completed');
    expect(await t.runtime.listRuns(projectId)).toHaveLength(1);
    await expect(t.runtime.startRun(projectId)).rejects.toMatchObject({ status: 422, message: expect.stringContaining('nothing to do') as string });
  });

  it('tasks added while a run is active are picked up by its lead and the run completes them all', async () => {
    const release = deferred();
    t = await startTestRuntime(async (req) => {
      if (req.taskKey === 'first') await release.promise;
      return ok(req);
    });
    const projectId = await t.project({ name: 'grow', testCommand: 'node --test' });
    await t.addTasks(projectId, [{ key: 'first', title: 'First', description: '' }]);
    const run = await t.runtime.startRun(projectId);
    await t.model.waitForRequest((r) => r.taskKey === 'first');
    await t.addTasks(projectId, [{ key: 'second', title: 'Second', description: '', dependsOn: ['first'] }]);
    release.resolve();
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.completed');
    expect((await t.runtime.listTasks(projectId)).map((x) => [x.key, x.status])).toEqual([
      ['first', 'completed'],
      ['second', 'completed'],
    ]);
  });

  it('dispatches ready tasks by priority, then age', async () => {
    t = await startTestRuntime(ok);
    const projectId = await t.project({ name: 'order', testCommand: 'node --test', config: { maxConcurrency: 1 } });
    await t.addTasks(projectId, [
      { key: 'old-low', title: 'x', description: '', priority: 3 },
      { key: 'old-mid', title: 'x', description: '', priority: 2 },
      { key: 'new-top', title: 'x', description: '', priority: 0 },
      { key: 'new-mid', title: 'x', description: '', priority: 2 },
    ]);
    const run = await t.runtime.startRun(projectId);
    await t.runEnd(projectId, run.id);
    expect(t.model.requests.map((r) => r.taskKey)).toEqual(['new-top', 'old-mid', 'new-mid', 'old-low']);
  });

  it('pause lets in-flight work finish and starts nothing new; resume continues; control in the wrong state is 409', async () => {
    const release = deferred();
    t = await startTestRuntime(async (req) => {
      if (req.taskKey === 'first') await release.promise;
      return ok(req);
    });
    const projectId = await t.project({ name: 'pause', testCommand: 'node --test', config: { maxConcurrency: 1 } });
    await t.addTasks(projectId, [
      { key: 'first', title: 'x', description: '', priority: 0 },
      { key: 'second', title: 'x', description: '' },
    ]);
    const run = await t.runtime.startRun(projectId);
    await t.model.waitForRequest((r) => r.taskKey === 'first');
    await expect(t.runtime.resumeRun(projectId)).rejects.toMatchObject({ status: 409 });
    expect((await t.runtime.pauseRun(projectId)).status).toBe('pausing');
    await expect(t.runtime.pauseRun(projectId)).rejects.toMatchObject({ status: 409 });
    release.resolve();
    const paused = await t.waitForEvent(projectId, (e) => e.type === 'run.paused' && (e.data as { status: string }).status === 'paused');
    expect(paused.runId).toBe(run.id);
    // `run.pausing` when the pause was accepted (work in flight), then exactly one `run.paused`,
    // after the in-flight task's last event: never a `run.paused` that says "pausing".
    const log = (await t.runtime.eventLog(projectId, 0, 1000)).events;
    const runEvents = log.filter((e) => e.type === 'run.pausing' || e.type === 'run.paused').map((e) => [e.type, (e.data as { status: string }).status]);
    expect(runEvents).toEqual([
      ['run.pausing', 'pausing'],
      ['run.paused', 'paused'],
    ]);
    const lastOfFirst = Math.max(...log.filter((e) => e.type === 'task.status_changed' && (e.data as { key: string }).key === 'first').map((e) => e.seq));
    expect(paused.seq).toBeGreaterThan(lastOfFirst);
    expect((await t.runtime.getRun(projectId, run.id)).status).toBe('paused');
    expect(await t.runtime.getTask(projectId, 'first')).toMatchObject({ status: 'completed' });
    expect(await t.runtime.getTask(projectId, 'second')).toMatchObject({ status: 'pending' });
    expect(t.model.requests.map((r) => r.taskKey)).toEqual(['first']);
    await expect(t.runtime.deleteProject(projectId)).rejects.toMatchObject({ status: 409 });

    expect((await t.runtime.resumeRun(projectId)).status).toBe('running');
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.completed');
    await expect(t.runtime.cancelRun(projectId)).rejects.toMatchObject({ status: 409 });
  });
});

describe('actors', () => {
  it('lists the lead and every worker with machine, version and state, and serves a sanitised snapshot', async () => {
    t = await startTestRuntime(ok);
    const projectId = await t.project({ name: 'actors', testCommand: 'node --test' });
    await t.addTasks(projectId, [
      { key: 'api', title: 'Server endpoint', description: '' },
      { key: 'page', title: 'Page component', description: '' },
    ]);
    const run = await t.runtime.startRun(projectId);
    await t.runEnd(projectId, run.id);
    // The event is published when the final write commits; the lead reaches its final state just after.
    await t.runtime.host(projectId)?.ended;
    const actors = await t.runtime.listActors(projectId);
    expect(actors.map((a) => [a.id, a.kind, a.machine, a.machineVersion])).toEqual([
      ['backend-1', 'worker', 'worker', WORKER_MACHINE_VERSION],
      ['frontend-1', 'worker', 'worker', WORKER_MACHINE_VERSION],
      ['lead', 'lead', 'lead', LEAD_MACHINE_VERSION],
    ]);
    expect(actors.find((a) => a.id === 'lead')).toMatchObject({ state: 'completed', status: 'done' });
    expect(actors.find((a) => a.id === 'backend-1')).toMatchObject({ agentType: 'backend', state: 'idle' });
    const lead = await t.runtime.getActor(projectId, 'lead');
    expect(lead.snapshot).toMatchObject({ value: 'completed', status: 'done' });
    expect(JSON.stringify(lead.snapshot)).not.toContain('sk-test-not-a-secret');
    await expect(t.runtime.getActor(projectId, 'backend-9')).rejects.toMatchObject({ status: 404 });
    const events = await t.events(projectId);
    const states = events.filter((e) => e.type === 'agent.state_changed' && e.agentId === 'backend-1').map((e) => (e.data as { state: unknown }).state);
    expect(states).toEqual(['idle', 'preparing', 'generating', 'applying', 'testing', 'committing', 'idle']);
    // The lead's state changes come before the writes they lead to.
    const finishing = events.find((e) => e.type === 'agent.state_changed' && e.agentId === 'lead' && (e.data as { state: unknown }).state === 'finishing')!;
    const completed = events.find((e) => e.type === 'run.completed')!;
    expect(finishing.seq).toBeLessThan(completed.seq);
  });
});
