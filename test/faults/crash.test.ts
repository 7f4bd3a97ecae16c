/**
 * `kill -9` the real service during a model call, during the tests and during a merge; restart
 * it on the same data. The run completes, nothing answered is paid for twice, the event log has
 * unique increasing seqs, an SSE client resuming from its last id gets every later event exactly
 * once, and nothing is left in a non-terminal status.
 */
import { execFileSync } from 'node:child_process';
import { writeFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { MessagesRequest, Reply } from '../../src/scripted-model/server.ts';
import { moduleWithTest, writeFiles } from '../support/replies.ts';
import { sse, type SseClient } from '../support/service.ts';
import { crash, startRig, until, type Instance, type Rig } from './support.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

type Json = Record<string, unknown>;
interface LogEvent {
  seq: number;
  type: string;
  taskId?: string;
  data: Json;
}

async function project(r: Rig, i: Instance, body: Json, tasks: Json[]): Promise<string> {
  const p = await r.api(i, 'POST', '/api/projects', body);
  expect(p.status).toBe(201);
  const id = p.body.id as string;
  expect((await r.api(i, 'POST', `/api/projects/${id}/tasks`, { tasks })).status).toBe(201);
  return id;
}

async function eventLog(r: Rig, i: Instance, projectId: string): Promise<LogEvent[]> {
  return (await r.api<{ events: LogEvent[] }>(i, 'GET', `/api/projects/${projectId}/events/log?limit=1000`)).body.events;
}

/** Every generation (task, attempt) was answered at most once. */
function answeredOnce(requests: MessagesRequest[]): void {
  const answered = requests.filter((q) => q.answeredAt !== null).map((q) => `${q.taskKey}#${q.attempt}`);
  expect(new Set(answered).size).toBe(answered.length);
}

async function settledState(r: Rig, i: Instance, projectId: string, log: LogEvent[]): Promise<void> {
  const seqs = log.map((e) => e.seq);
  expect(new Set(seqs).size).toBe(seqs.length);
  expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
  const tasks = (await r.api<{ tasks: { status: string }[] }>(i, 'GET', `/api/projects/${projectId}/tasks`)).body.tasks;
  expect(tasks.every((t) => ['completed', 'failed', 'blocked', 'cancelled'].includes(t.status))).toBe(true);
  const runs = (await r.api<{ runs: { status: string }[] }>(i, 'GET', `/api/projects/${projectId}/runs`)).body.runs;
  expect(runs.every((run) => ['completed', 'blocked', 'cancelled', 'failed'].includes(run.status))).toBe(true);
}

/** An SSE client that survives the crash: what it got before, then a resume from its last id. */
async function resumeAfterCrash(before: SseClient, i: Instance, projectId: string): Promise<SseClient> {
  return sse(`${i.url}/api/projects/${projectId}/events`, { lastEventId: before.lastId });
}

describe('kill -9', () => {
  it('during a model call: the restarted service asks again (nothing was answered), the run completes, the stream resumes exactly once', async () => {
    let first = true;
    rig = await startRig((req): Reply => {
      if (req.taskKey === 'b' && first) {
        first = false;
        return { kind: 'hang' };
      }
      return moduleWithTest(req.taskKey!, 'ok');
    });
    const one = await rig.start();
    const id = await project(rig, one, { name: 'k9-model', testCommand: 'node --test' }, [
      { key: 'a', title: 'A', description: '' },
      { key: 'b', title: 'B', description: '', dependsOn: ['a'] },
      { key: 'c', title: 'C', description: '', dependsOn: ['b'] },
    ]);
    const watcher = await sse(`${one.url}/api/projects/${id}/events`);
    await rig.api(one, 'POST', `/api/projects/${id}/start`);
    await rig.model.waitForRequest((q) => q.taskKey === 'b');
    await watcher.until((m) => m.some((x) => x.event === 'task.assigned' && x.data.includes('"key":"b"')));
    await crash(one);
    await watcher.ended;

    const two = await rig.start();
    const resumed = await resumeAfterCrash(watcher, two, id);
    await resumed.until((m) => m.some((x) => x.event === 'run.completed'));
    resumed.close();
    const log = await eventLog(rig, two, id);
    const seen = [...watcher.messages, ...resumed.messages].map((m) => Number(m.id));
    expect(seen).toEqual(log.filter((e) => e.seq <= Number(resumed.messages.at(-1)!.id)).map((e) => e.seq));
    answeredOnce(rig.model.requests);
    expect(rig.model.requests.filter((q) => q.taskKey === 'b')).toHaveLength(2);
    await settledState(rig, two, id, log);
    expect(log.filter((e) => e.type === 'run.completed')).toHaveLength(1);
  });

  it('during the tests: the answer recorded before the crash is reused, never requested again', async () => {
    rig = await startRig(() => writeFiles({ 'done.txt': 'done\n' }));
    const gate = `${rig.dataDir}/gate`;
    const one = await rig.start();
    const workspace = `${rig.dataDir}/ws`;
    execFileSync('git', ['init', '-q', '-b', 'main', workspace]);
    // The baseline (no done.txt yet) passes at once; the task's tests wait for the gate.
    await writeFile(`${workspace}/gate.js`, `const fs = require('fs');\nconst wait = () => !fs.existsSync('done.txt') || fs.existsSync(${JSON.stringify(gate)}) ? console.log('# tests 1\\n# pass 1') : setTimeout(wait, 20);\nwait();\n`);
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', 'add', '-A'], { cwd: workspace });
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m', 'init'], { cwd: workspace });
    const id = await project(rig, one, { name: 'k9-tests', testCommand: ['node', 'gate.js'], workspace, config: { sandbox: { mode: 'none' } } }, [{ key: 'a', title: 'A', description: '' }]);
    const watcher = await sse(`${one.url}/api/projects/${id}/events`);
    await rig.api(one, 'POST', `/api/projects/${id}/start`);
    await watcher.until((m) => m.some((x) => x.event === 'agent.state_changed' && x.data.includes('"testing"')));
    await crash(one);

    const two = await rig.start();
    await writeFile(gate, '');
    const resumed = await resumeAfterCrash(watcher, two, id);
    await resumed.until((m) => m.some((x) => x.event === 'run.completed'));
    resumed.close();
    expect(rig.model.requests).toHaveLength(1);
    const log = await eventLog(rig, two, id);
    expect(log.filter((e) => e.type === 'llm.usage')).toHaveLength(1);
    await settledState(rig, two, id, log);
    expect((await rig.api(two, 'GET', `/api/projects/${id}/tasks/a`)).body).toMatchObject({ status: 'completed', attempts: 1 });
  });

  it('during a merge: the work lands exactly once, one commit per task, the workspace clean', async () => {
    rig = await startRig((req) => moduleWithTest(req.taskKey!, 'ok'));
    const one = await rig.start();
    const id = await project(rig, one, { name: 'k9-merge', testCommand: 'node --test' }, [
      { key: 'a', title: 'A', description: '' },
      { key: 'b', title: 'B', description: '', dependsOn: ['a'] },
    ]);
    await writeFile(rig.holdMerge, '');
    await rig.api(one, 'POST', `/api/projects/${id}/start`);
    await until(() => existsSync(rig!.mergeHeld), 'the merge of a to be held');
    await crash(one);
    await rm(rig.holdMerge);

    const two = await rig.start();
    const watcher = await sse(`${two.url}/api/projects/${id}/events?types=run.completed,run.blocked,run.failed`);
    await watcher.until((m) => m.length > 0);
    watcher.close();
    expect(watcher.messages[0]!.event).toBe('run.completed');
    const workspace = (await rig.api(two, 'GET', `/api/projects/${id}`)).body.workspace as string;
    const git = (...args: string[]) => execFileSync('git', args, { cwd: workspace, encoding: 'utf8' }).trim();
    expect(git('rev-list', '--count', 'HEAD')).toBe('3');
    expect(git('log', '--format=%s').split('\n')).toEqual(['B (b)', 'A (a)', 'troupe: initial commit']);
    expect(git('status', '--porcelain')).toBe('');
    answeredOnce(rig.model.requests);
    expect(rig.model.requests).toHaveLength(2);
    await settledState(rig, two, id, await eventLog(rig, two, id));
  });

  it('60 ms after commit.created: the landed task completes exactly once (not failed), one commit per task, its dependents complete', async () => {
    rig = await startRig((req) => moduleWithTest(req.taskKey!, 'ok'));
    const one = await rig.start();
    const id = await project(rig, one, { name: 'k9-landed', testCommand: 'node --test', config: { sandbox: { mode: 'none' } } }, [
      { key: 'a', title: 'A', description: '' },
      { key: 'b', title: 'B', description: '', dependsOn: ['a'] },
      { key: 'c', title: 'C', description: '', dependsOn: ['b'] },
    ]);
    const watcher = await sse(`${one.url}/api/projects/${id}/events?types=commit.created`);
    await rig.api(one, 'POST', `/api/projects/${id}/start`);
    await watcher.until((m) => m.length > 0);
    // The point is a kill at a moment: 60 ms after the commit is reported, before the worker's
    // completion reaches the database (the window issue 11 reproduced at will).
    await new Promise((resolve) => setTimeout(resolve, 60));
    await crash(one);
    await watcher.ended;
    // The subject, then the model's explanation as the body.
    expect(watcher.messages[0]!.data).toContain('"message":"A (a)\\n\\ndone"');

    const two = await rig.start();
    const ended = await sse(`${two.url}/api/projects/${id}/events?types=run.completed,run.blocked,run.failed`);
    await ended.until((m) => m.length > 0);
    ended.close();
    expect(ended.messages[0]!.event).toBe('run.completed');
    const tasks = (await rig.api<{ tasks: { key: string; status: string }[] }>(two, 'GET', `/api/projects/${id}/tasks`)).body.tasks;
    expect(tasks.map((t) => [t.key, t.status])).toEqual([
      ['a', 'completed'],
      ['b', 'completed'],
      ['c', 'completed'],
    ]);
    const log = await eventLog(rig, two, id);
    // Each task became `completed` exactly once, and nothing was ever `failed` or `blocked`.
    const changes = log.filter((e) => e.type === 'task.status_changed').map((e) => e.data as { key: string; to: string });
    expect(changes.filter((c) => c.to === 'completed').map((c) => c.key)).toEqual(['a', 'b', 'c']);
    expect(changes.filter((c) => c.to === 'failed' || c.to === 'blocked')).toEqual([]);
    const workspace = (await rig.api(two, 'GET', `/api/projects/${id}`)).body.workspace as string;
    const git = (...args: string[]) => execFileSync('git', args, { cwd: workspace, encoding: 'utf8' }).trim();
    expect(git('log', '--format=%s').split('\n')).toEqual(['C (c)', 'B (b)', 'A (a)', 'troupe: initial commit']);
    expect(git('status', '--porcelain')).toBe('');
    // The landed task is never asked again. Its dependent's call may have been answered by the
    // fake in the moment of the kill, before the answer was recorded: then it is asked once more
    // (an answer lost in flight, README "Restarts lose nothing but time"), never a third time.
    const answered = rig.model.requests.filter((q) => q.answeredAt !== null).map((q) => q.taskKey);
    expect(answered.filter((k) => k === 'a')).toHaveLength(1);
    for (const key of ['b', 'c']) expect(answered.filter((k) => k === key).length, key).toBeLessThanOrEqual(2);
    await settledState(rig, two, id, log);
  });
});
