/**
 * The unhappy paths of a run, with real parts: refused paths, model faults, budgets, missing
 * tests, restarts. Each asserts what a user would see: statuses, events, files on disk, and
 * what the Messages API double received.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { and, eq } from 'drizzle-orm';
import { actorSnapshots } from '../../src/db/schema.ts';
import type { Reply } from '../../src/scripted-model/server.ts';
import { deferred } from '../support/deferred.ts';
import { moduleWithTest, overloaded, writeFiles } from '../support/replies.ts';
import { startTestRuntime, type TestRuntime } from '../support/runtime.ts';

let t: TestRuntime | undefined;
const temps: string[] = [];
afterEach(async () => {
  await t?.close();
  t = undefined;
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'troupe-faults-'));
  temps.push(dir);
  return dir;
}

const git = (cwd: string, ...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd, encoding: 'utf8' }).trim();

describe('refused files', () => {
  it('paths escaping the task tree (.., absolute, .git, a symlink out) write nothing anywhere and fail the attempt', async () => {
    const outside = await tempDir();
    const workspace = await tempDir();
    git(workspace, 'init', '-q', '-b', 'main');
    await writeFile(path.join(workspace, 'README.md'), 'hello\n');
    await symlink(outside, path.join(workspace, 'out'));
    git(workspace, 'add', '-A');
    git(workspace, 'commit', '-q', '-m', 'init');
    const absolute = path.join(outside, 'absolute.txt');
    const attempts: Reply[] = [
      writeFiles({ 'ok.txt': 'fine\n', '../escape.txt': 'x' }),
      writeFiles({ 'ok.txt': 'fine\n', [absolute]: 'x' }),
      writeFiles({ 'ok.txt': 'fine\n', '.git/config': '[core]\n' }),
      writeFiles({ 'ok.txt': 'fine\n', 'out/pwned.txt': 'x' }),
    ];
    t = await startTestRuntime((req) => attempts[req.attempt! - 1]!);
    const projectId = await t.project({ name: 'evil', testCommand: 'node --test', workspace, config: { maxCorrectionAttempts: 3 } });
    await t.addTasks(projectId, [{ key: 'evil', title: 'Evil', description: 'tries to escape' }]);
    const run = await t.runtime.startRun(projectId);
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.blocked');

    const task = await t.runtime.getTask(projectId, 'evil');
    expect(task).toMatchObject({ status: 'blocked', blockedReason: 'attempts_exhausted', attempts: 4 });
    const rejected = (await t.events(projectId)).filter((e) => e.type === 'files.rejected').map((e) => e.data);
    expect(rejected.map((r) => [r.attempt, r.path])).toEqual([
      [1, '../escape.txt'],
      [2, absolute],
      [3, '.git/config'],
      [4, 'out/pwned.txt'],
    ]);
    expect(rejected.every((r) => r.reason.length > 0)).toBe(true);
    expect(task.testResults).toEqual([]);
    // Nothing was written: not outside, not next to the worktree, not even the good file.
    expect(await readdir(outside)).toEqual([]);
    const worktrees = path.join(t.dataDir, 'worktrees', projectId);
    expect(existsSync(path.join(worktrees, 'escape.txt'))).toBe(false);
    expect(existsSync(path.join(t.dataDir, 'worktrees', 'escape.txt'))).toBe(false);
    expect(existsSync(path.join(workspace, 'ok.txt'))).toBe(false);
    expect(git(workspace, 'status', '--porcelain')).toBe('');
  });
});

describe('model faults', () => {
  it('529 overloaded answers are retried by the SDK: one generation, one bill', async () => {
    let calls = 0;
    t = await startTestRuntime((req) => (++calls <= 2 ? overloaded : moduleWithTest(req.taskKey!, 'ok')), { maxRetries: 2 });
    const projectId = await t.project({ name: 'busy', testCommand: 'node --test' });
    await t.addTasks(projectId, [{ key: 'a', title: 'A', description: 'a' }]);
    const run = await t.runtime.startRun(projectId);
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.completed');
    expect(t.model.requests).toHaveLength(3);
    expect(t.model.requests.every((r) => r.authorization === 'Bearer sk-test-not-a-secret' || r.apiKey === 'sk-test-not-a-secret')).toBe(true);
    expect((await t.runtime.getTask(projectId, 'a')).attempts).toBe(1);
    expect((await t.events(projectId)).filter((e) => e.type === 'llm.usage')).toHaveLength(1);
  });

  it('overloaded after every retry is a failed attempt with the reason, then corrected', async () => {
    let calls = 0;
    t = await startTestRuntime((req) => (++calls <= 2 ? overloaded : moduleWithTest(req.taskKey!, 'ok')), { maxRetries: 1 });
    const projectId = await t.project({ name: 'busy2', testCommand: 'node --test' });
    await t.addTasks(projectId, [{ key: 'a', title: 'A', description: 'a' }]);
    const run = await t.runtime.startRun(projectId);
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.completed');
    const task = await t.runtime.getTask(projectId, 'a');
    expect(task.attempts).toBe(2);
    expect(task.corrections[0]).toMatchObject({ attempt: 1, status: 'succeeded', errorSummary: expect.stringMatching(/529/) as string });
  });

  it('429 rate limits are retried by the SDK after the retry-after it was given', async () => {
    let calls = 0;
    t = await startTestRuntime(
      (req) => (++calls === 1 ? { kind: 'error', status: 429, type: 'rate_limit_error', message: 'slow down', retryAfterMs: 20 } : moduleWithTest(req.taskKey!, 'ok')),
      { maxRetries: 2 },
    );
    const projectId = await t.project({ name: 'limited', testCommand: 'node --test' });
    await t.addTasks(projectId, [{ key: 'a', title: 'A', description: 'a' }]);
    const run = await t.runtime.startRun(projectId);
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.completed');
    expect(t.model.requests).toHaveLength(2);
    expect((await t.runtime.getTask(projectId, 'a')).attempts).toBe(1);
  });

  it('a model call past its timeout is a failed attempt ("timed out"), and the correction goes on', async () => {
    let calls = 0;
    t = await startTestRuntime((req) => (++calls === 1 ? { kind: 'hang' } : moduleWithTest(req.taskKey!, 'ok')), { maxRetries: 0, timeoutMs: 1_000 });
    const projectId = await t.project({ name: 'slow', testCommand: 'node --test' });
    await t.addTasks(projectId, [{ key: 'a', title: 'A', description: 'a' }]);
    const run = await t.runtime.startRun(projectId);
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.completed');
    expect(t.model.requests[0]!.abortedAt).not.toBeNull();
    const task = await t.runtime.getTask(projectId, 'a');
    expect(task.attempts).toBe(2);
    expect(task.corrections[0]!.errorSummary).toMatch(/timed out/);
  });

  it('401 fails the task at once with the reason (no retries, no corrections) and blocks its dependents', async () => {
    t = await startTestRuntime(() => ({ kind: 'error', status: 401, type: 'authentication_error', message: 'invalid x-api-key' }));
    const projectId = await t.project({ name: 'auth', testCommand: 'node --test', config: { maxCorrectionAttempts: 3 } });
    await t.addTasks(projectId, [
      { key: 'a', title: 'A', description: 'a' },
      { key: 'b', title: 'B', description: 'b', dependsOn: ['a'] },
    ]);
    const run = await t.runtime.startRun(projectId);
    const end = await t.runEnd(projectId, run.id);
    expect(end.type).toBe('run.blocked');
    expect(t.model.requests).toHaveLength(1);
    const changes = (await t.events(projectId)).filter((e) => e.type === 'task.status_changed').map((e) => e.data as { key: string; to: string; reason?: string });
    expect(changes.find((c) => c.key === 'a' && c.to === 'failed')?.reason).toMatch(/401.*invalid x-api-key/);
    expect(await t.runtime.getTask(projectId, 'a')).toMatchObject({ status: 'failed', attempts: 1 });
    expect(await t.runtime.getTask(projectId, 'b')).toMatchObject({ status: 'blocked', blockedReason: 'dependency_failed' });
  });

  it('an answer that is not a valid write_files call is a failed attempt, corrected with the reason in the prompt', async () => {
    t = await startTestRuntime((req) =>
      req.attempt === 1 ? { kind: 'tool', name: 'write_files', input: { explanation: 'forgot the files' } } : moduleWithTest('a', 'ok'),
    );
    const projectId = await t.project({ name: 'invalid', testCommand: 'node --test' });
    await t.addTasks(projectId, [{ key: 'a', title: 'A', description: 'a' }]);
    const run = await t.runtime.startRun(projectId);
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.completed');
    expect(t.model.requests[1]!.text).toContain('invalid write_files input');
  });
});

describe('workspace and process faults', () => {
  it('a workspace that disappears mid-run fails the task with the reason (no corrections burnt)', async () => {
    const workspace = await tempDir();
    const gone = deferred();
    t = await startTestRuntime(async (req) => {
      await gone.promise;
      return moduleWithTest(req.taskKey!, 'ok');
    });
    const projectId = await t.project({ name: 'vanishing', testCommand: 'node --test', workspace, config: { maxCorrectionAttempts: 3 } });
    await t.addTasks(projectId, [{ key: 'a', title: 'A', description: '' }]);
    const run = await t.runtime.startRun(projectId);
    await t.model.waitForRequest(() => true);
    await rm(workspace, { recursive: true, force: true });
    gone.resolve();
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.blocked');
    const changes = (await t.events(projectId)).filter((e) => e.type === 'task.status_changed').map((e) => e.data as { to: string; reason?: string });
    expect(changes.at(-1)).toMatchObject({ to: 'failed', reason: expect.stringMatching(/workspace missing/) as string });
    expect(t.model.requests).toHaveLength(1);
  });

  it('a test command that crashes (killed by a signal) is an error, a failed attempt, not a pass', async () => {
    t = await startTestRuntime((req) => moduleWithTest(req.taskKey!, 'ok'));
    const projectId = await t.project({
      name: 'crashing',
      // Crashes once the task's files are there (the baseline, on the empty base tree, passes).
      testCommand: ['node', '-e', "if (require('fs').existsSync('lib')) process.kill(process.pid, 'SIGSEGV')"],
      config: { maxCorrectionAttempts: 1 },
    });
    await t.addTasks(projectId, [{ key: 'a', title: 'A', description: '' }]);
    const run = await t.runtime.startRun(projectId);
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.blocked');
    const results = (await t.events(projectId)).filter((e) => e.type === 'test.result').map((e) => e.data);
    expect(results).toEqual([
      expect.objectContaining({ phase: 'baseline', status: 'passed' }),
      expect.objectContaining({ status: 'error', verified: false }),
      expect.objectContaining({ status: 'error', verified: false }),
    ]);
    expect(await t.runtime.getTask(projectId, 'a')).toMatchObject({ status: 'blocked', blockedReason: 'attempts_exhausted' });
  });
});

describe('budgets and prices', () => {
  it('stops calling the model once the budget is spent: budget.exceeded, budget_exhausted, run blocked; raising the budget resumes it', async () => {
    t = await startTestRuntime((req) => moduleWithTest(req.taskKey!, 'ok'));
    // One default answer (1200 in, 400 out on claude-sonnet-4-6) costs $0.0096.
    const projectId = await t.project({ name: 'budget', testCommand: 'node --test', config: { maxConcurrency: 1, budgetUsd: 0.005 } });
    await t.addTasks(projectId, [
      { key: 'a', title: 'A', description: 'a', priority: 0 },
      { key: 'b', title: 'B', description: 'b' },
    ]);
    const run = await t.runtime.startRun(projectId);
    const end = await t.runEnd(projectId, run.id);
    expect(end.type).toBe('run.blocked');
    expect((end.data as { summary: string }).summary).toMatch(/^budget exhausted/);
    expect(t.model.requests).toHaveLength(1);
    const exceeded = (await t.events(projectId)).filter((e) => e.type === 'budget.exceeded');
    expect(exceeded.map((e) => e.data)).toEqual([{ spentUsd: 0.0096, budgetUsd: 0.005 }]);
    expect(await t.runtime.getTask(projectId, 'b')).toMatchObject({ status: 'blocked', blockedReason: 'budget_exhausted' });

    await t.runtime.updateProject(projectId, { config: { budgetUsd: 1 } });
    const done = await t.waitForEvent(projectId, (e) => e.type === 'run.completed');
    expect(done.runId).toBe(run.id);
    expect((await t.runtime.getProject(projectId)).usage.costUsd).toBeCloseTo(0.0192, 6);
  });

  it('a model with no known price costs null, never 0', async () => {
    t = await startTestRuntime((req) => moduleWithTest(req.taskKey!, 'ok'));
    const projectId = await t.project({ name: 'unpriced', testCommand: 'node --test', config: { models: { backend: 'my-private-model' } } });
    await t.addTasks(projectId, [{ key: 'a', title: 'Server module', description: 'a' }]);
    const run = await t.runtime.startRun(projectId);
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.completed');
    expect(t.model.requests[0]!.body.model).toBe('my-private-model');
    const usage = (await t.events(projectId)).find((e) => e.type === 'llm.usage')!;
    expect(usage.data).toMatchObject({ model: 'my-private-model', costUsd: null });
    expect((await t.runtime.getProject(projectId)).usage.costUsd).toBeNull();
    expect((await t.runtime.usage(projectId)).byModel).toEqual([expect.objectContaining({ model: 'my-private-model', costUsd: null })]);
  });
});

describe('honest test signals', () => {
  it('no tests found: a backend task completes unverified, a test task fails its attempt', async () => {
    t = await startTestRuntime((req) => writeFiles({ [`lib/${req.taskKey}.js`]: 'module.exports = 1;\n' }));
    const projectId = await t.project({ name: 'notests', testCommand: 'node --test', config: { maxCorrectionAttempts: 0 } });
    await t.addTasks(projectId, [
      { key: 'impl', title: 'Implement the parser', description: 'backend work', agentType: 'backend' },
      { key: 'tests', title: 'Write the tests', description: 'test work', agentType: 'test' },
    ]);
    const run = await t.runtime.startRun(projectId);
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.blocked');
    const results = (await t.events(projectId)).filter((e) => e.type === 'test.result');
    const byTask = new Map(results.map((e) => [e.taskId, e.data as { status: string; verified: boolean }]));
    const impl = await t.runtime.getTask(projectId, 'impl');
    const tests = await t.runtime.getTask(projectId, 'tests');
    const changes = (await t.events(projectId)).filter((e) => e.type === 'task.status_changed').map((e) => e.data);
    expect(impl.status, JSON.stringify(changes)).toBe('completed');
    expect(byTask.get(impl.id)).toMatchObject({ status: 'no_tests', verified: false });
    expect(tests).toMatchObject({ status: 'blocked', blockedReason: 'attempts_exhausted' });
    expect(byTask.get(tests.id)).toMatchObject({ status: 'no_tests', verified: false });
  });
});

describe('shared workspaces', () => {
  it('a plain directory (not git) runs in shared mode: files land in place, nothing is committed', async () => {
    const workspace = await tempDir();
    await mkdir(path.join(workspace, 'lib'));
    t = await startTestRuntime((req) => moduleWithTest(req.taskKey!, 'ok'));
    const projectId = await t.project({ name: 'plain', testCommand: 'node --test', workspace });
    expect((await t.runtime.getProject(projectId)).config.isolation).toBe('shared');
    await t.addTasks(projectId, [
      { key: 'a', title: 'A', description: 'a' },
      { key: 'b', title: 'B', description: 'b', dependsOn: ['a'] },
    ]);
    const run = await t.runtime.startRun(projectId);
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.completed');
    expect(existsSync(path.join(workspace, 'lib', 'a.js'))).toBe(true);
    expect(existsSync(path.join(workspace, 'test', 'b.test.js'))).toBe(true);
    expect(existsSync(path.join(workspace, '.git'))).toBe(false);
    expect((await t.runtime.getTask(projectId, 'a')).commit).toBeNull();
  });
});

describe('restarts', () => {
  /** A project whose test command waits for a gate file, so a run can be stopped mid-test. */
  async function gatedProject(): Promise<{ projectId: string; gate: string }> {
    const gate = path.join(await tempDir(), 'open');
    const workspace = await tempDir();
    await writeFile(
      path.join(workspace, 'gate.js'),
      // The baseline (no done.txt yet) passes at once; a task's tests wait for the gate.
      `const fs = require('fs');\nconst wait = () => !fs.existsSync('done.txt') || fs.existsSync(${JSON.stringify(gate)}) ? console.log('# tests 1\\n# pass 1') : setTimeout(wait, 20);\nwait();\n`,
    );
    git(workspace, 'init', '-q', '-b', 'main');
    git(workspace, 'add', '-A');
    git(workspace, 'commit', '-q', '-m', 'init');
    // The gate is a side channel from outside the task's tree, which the sandbox would hide.
    const projectId = await t!.project({ name: 'restart', testCommand: ['node', 'gate.js'], workspace, config: { sandbox: { mode: 'none' } } });
    await t!.addTasks(projectId, [{ key: 'a', title: 'A', description: 'a' }]);
    return { projectId, gate };
  }

  it('the restore point is never older than the task rows: when a dispatch commits, the persisted lead already holds the task in progress', async () => {
    t = await startTestRuntime((req) => moduleWithTest(req.taskKey!, 'ok'));
    const projectId = await t.project({ name: 'restore-point', testCommand: 'node --test' });
    await t.addTasks(projectId, [
      { key: 'a', title: 'A', description: 'a' },
      { key: 'b', title: 'B', description: 'b', dependsOn: ['a'] },
      { key: 'c', title: 'C', description: 'c', dependsOn: ['b'] },
    ]);
    const seen: Promise<[string, unknown]>[] = [];
    const sub = t.bus.subscribe({ projectId, types: ['task.assigned'] }, (e) => {
      const key = (e.data as { key: string }).key;
      // Read at once, in the moment the dispatch is published: a restart now would restore this row.
      seen.push(
        t!.store.db
          .select({ snapshot: actorSnapshots.snapshot })
          .from(actorSnapshots)
          .where(and(eq(actorSnapshots.runId, e.runId!), eq(actorSnapshots.actorId, 'lead')))
          .then(([row]) => [key, (row?.snapshot as { context?: { tasks?: Record<string, { status: string }> } } | undefined)?.context?.tasks?.[key]?.status]),
      );
    });
    const run = await t.runtime.startRun(projectId);
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.completed');
    sub.close();
    const statuses = await Promise.all(seen);
    expect(statuses.map(([key]) => key)).toEqual(['a', 'b', 'c']);
    for (const [, status] of statuses) expect(['in_progress', 'completed']).toContain(status);
  });

  it('a restarted service restores the lead and its workers from their snapshots: the answer recorded before is reused', async () => {
    t = await startTestRuntime(() => writeFiles({ 'done.txt': 'done\n' }), { isolated: true });
    const { projectId, gate } = await gatedProject();
    const run = await t.runtime.startRun(projectId);
    await t.waitForEvent(projectId, (e) => e.type === 'agent.state_changed' && (e.data as { state: unknown }).state === 'testing');
    expect(t.model.requests).toHaveLength(1);

    await t.restart();
    // Restored, not rebuilt: the task never went back to the queue.
    expect((await t.runtime.getTask(projectId, 'a')).status).toBe('in_progress');
    expect(t.runtime.host(projectId)?.actor.getSnapshot().children['backend-1']).toBeDefined();
    await writeFile(gate, '');
    const end = await t.runEnd(projectId, run.id);
    expect(end.type).toBe('run.completed');
    expect(t.model.requests).toHaveLength(1);
    expect((await t.events(projectId)).filter((e) => e.type === 'llm.usage')).toHaveLength(1);
    const changes = (await t.events(projectId)).filter((e) => e.type === 'task.status_changed').map((e) => (e.data as { to: string }).to);
    expect(changes).toEqual(['in_progress', 'completed']);
    expect(await t.runtime.getTask(projectId, 'a')).toMatchObject({ status: 'completed', attempts: 1 });
  });

  it('when the machines changed version, the run is rebuilt from the task rows: in-flight work is re-queued and the recorded answer reused', async () => {
    t = await startTestRuntime(() => writeFiles({ 'done.txt': 'done\n' }), { isolated: true });
    const { projectId, gate } = await gatedProject();
    const run = await t.runtime.startRun(projectId);
    await t.waitForEvent(projectId, (e) => e.type === 'agent.state_changed' && (e.data as { state: unknown }).state === 'testing');
    await t.runtime.stop();
    // As if the new process shipped a newer lead machine than the one that wrote the snapshot.
    await t.store.db.update(actorSnapshots).set({ machineVersion: 0 }).where(eq(actorSnapshots.runId, run.id));

    await t.restart();
    await t.waitForEvent(projectId, (e) => e.type === 'task.status_changed' && (e.data as { from: string; to: string }).from === 'in_progress' && (e.data as { to: string }).to === 'pending');
    await writeFile(gate, '');
    const end = await t.runEnd(projectId, run.id);
    expect(end.type).toBe('run.completed');
    expect(t.model.requests).toHaveLength(1);
    expect((await t.events(projectId)).filter((e) => e.type === 'llm.usage')).toHaveLength(1);
    expect(await t.runtime.getTask(projectId, 'a')).toMatchObject({ status: 'completed', attempts: 1 });
  });
});
