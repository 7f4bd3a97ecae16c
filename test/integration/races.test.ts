/**
 * The races that matter: cancel against a completing task, retry against a running one. Each
 * ends in one consistent status that nothing writes back afterwards.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { childEnvFrom } from '../../src/config.ts';
import { makeGitShim } from '../support/git-shim.ts';
import { moduleWithTest } from '../support/replies.ts';
import { startTestRuntime, type TestRuntime } from '../support/runtime.ts';

let t: TestRuntime | undefined;
const temps: string[] = [];
afterEach(async () => {
  await t?.close();
  t = undefined;
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('races', () => {
  it('cancel arriving while the task is being merged: the task ends cancelled, its work stays off the branch, nothing writes it back', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'troupe-race-'));
    temps.push(dir);
    const shim = await makeGitShim(dir);
    const env = childEnvFrom(process.env);
    t = await startTestRuntime((req) => moduleWithTest(req.taskKey!, 'ok'), { childEnv: { ...env, PATH: `${shim.dir}:${env.PATH ?? ''}` } });
    const projectId = await t.project({ name: 'race', testCommand: 'node --test' });
    await t.addTasks(projectId, [{ key: 'a', title: 'A', description: '' }]);
    await writeFile(shim.hold, '');
    const run = await t.runtime.startRun(projectId);
    await until(() => existsSync(shim.held), 'the merge to start');

    const cancelled = await t.runtime.cancelTask(projectId, 'a');
    expect(cancelled.status).toBe('cancelled');
    await rm(shim.hold);
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.blocked');
    await t.runtime.host(projectId)?.settled();

    const task = await t.runtime.getTask(projectId, 'a');
    expect(task.status).toBe('cancelled');
    const changes = (await t.events(projectId)).filter((e) => e.type === 'task.status_changed').map((e) => (e.data as { to: string }).to);
    expect(changes).toEqual(['in_progress', 'cancelled']);
    const workspace = (await t.runtime.getProject(projectId)).workspace;
    expect(execFileSync('git', ['rev-list', '--count', 'HEAD'], { cwd: workspace, encoding: 'utf8' }).trim()).toBe('1');
    await expect(t.runtime.cancelTask(projectId, 'a')).rejects.toMatchObject({ status: 409 });
  });

  it('cancel arriving just after the completion was written is refused (409): completed stays completed', async () => {
    t = await startTestRuntime((req) => moduleWithTest(req.taskKey!, 'ok'));
    const projectId = await t.project({ name: 'late-cancel', testCommand: 'node --test' });
    await t.addTasks(projectId, [{ key: 'a', title: 'A', description: '' }]);
    const run = await t.runtime.startRun(projectId);
    await t.waitForEvent(projectId, (e) => e.type === 'task.status_changed' && (e.data as { to: string }).to === 'completed');
    await expect(t.runtime.cancelTask(projectId, 'a')).rejects.toMatchObject({ status: 409 });
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.completed');
    expect((await t.runtime.getTask(projectId, 'a')).status).toBe('completed');
  });

  it('retry while the task is running is refused (409) and changes nothing', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    t = await startTestRuntime(async (req) => {
      await held;
      return moduleWithTest(req.taskKey!, 'ok');
    });
    const projectId = await t.project({ name: 'early-retry', testCommand: 'node --test' });
    await t.addTasks(projectId, [{ key: 'a', title: 'A', description: '' }]);
    const run = await t.runtime.startRun(projectId);
    await t.model.waitForRequest(() => true);
    await expect(t.runtime.retryTask(projectId, 'a', 'hurry')).rejects.toMatchObject({ status: 409 });
    release();
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.completed');
    expect(await t.runtime.getTask(projectId, 'a')).toMatchObject({ status: 'completed', guidance: null, attempts: 1 });
  });
});

describe('adding tasks while the project is deleted', () => {
  it('answers 201 or 404, never a foreign-key error: the delete waits for the tasks, or the add finds no project', async () => {
    t = await startTestRuntime((req) => moduleWithTest(req.taskKey!, 'ok'));
    const outcomes: string[] = [];
    for (let round = 0; round < 8; round++) {
      const projectId = await t.project({ name: `gone-${round}`, testCommand: 'node --test' });
      const [added, deleted] = await Promise.allSettled([
        t.runtime.addTasks(projectId, [{ key: 'a', title: 'A', description: '', dependsOn: [], priority: 2 }]),
        t.runtime.deleteProject(projectId),
      ]);
      expect(deleted.status).toBe('fulfilled');
      outcomes.push(added.status === 'fulfilled' ? 'added' : String((added.reason as { status?: number }).status));
    }
    expect(outcomes.filter((o) => o !== 'added' && o !== '404')).toEqual([]);
  });
});
