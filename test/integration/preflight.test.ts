/**
 * The run's preflight with real parts: real git workspaces, real `node --test` runs on the base
 * tree, the real SDK against the scripted API (which counts every paid call).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Reply } from '../../src/scripted-model/server.ts';
import { writeFiles } from '../support/replies.ts';
import { startTestRuntime, type TestRuntime } from '../support/runtime.ts';

let t: TestRuntime | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();

/** A committed workspace with one passing and one failing `node --test` test. */
function seed(ws: string): void {
  mkdirSync(path.join(ws, 'test'), { recursive: true });
  writeFileSync(
    path.join(ws, 'test', 'old.test.js'),
    "const test = require('node:test');\nconst assert = require('node:assert');\n" +
      "test('old works', () => assert.ok(true));\ntest('old is broken', () => assert.strictEqual(1, 2));\n",
  );
  git(ws, 'add', '-A');
  git(ws, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-qm', 'seed');
}

const answer: Reply = writeFiles({
  'lib/add.js': 'exports.add = (a, b) => a + b;\n',
  'test/add.test.js': "const test = require('node:test');\nconst assert = require('node:assert');\nconst { add } = require('../lib/add.js');\ntest('add adds', () => assert.strictEqual(add(1, 2), 3));\n",
});

describe('preflight', () => {
  it('a test command that cannot start fails the run at once, with the reason, and no model call', async () => {
    t = await startTestRuntime(() => answer);
    const projectId = await t.project({ name: 'missing-cmd', testCommand: './run-tests.sh' });
    await t.addTasks(projectId, [{ key: 'a', title: 'A', description: 'Write lib/a.js' }]);
    const run = await t.runtime.startRun(projectId);
    const end = await t.runEnd(projectId, run.id);
    expect(end.type).toBe('run.failed');
    expect((end.data as { summary: string }).summary).toMatch(/^refused before any model call: the test command cannot start: command not found: \.\/run-tests\.sh/);
    expect(t.model.requests).toHaveLength(0);
    expect((await t.runtime.getTask(projectId, 'a')).status).toBe('pending');
  });

  it('uncommitted changes to tracked files stop a worktree run before it starts, naming them; nothing of the user is touched', async () => {
    t = await startTestRuntime(() => answer);
    const projectId = await t.project({ name: 'dirty', testCommand: 'node --test' });
    const ws = (await t.runtime.getProject(projectId)).workspace;
    seed(ws);
    writeFileSync(path.join(ws, 'test', 'old.test.js'), '// my unsaved edit\n');
    await t.addTasks(projectId, [{ key: 'a', title: 'A', description: 'Write lib/a.js' }]);
    const run = await t.runtime.startRun(projectId);
    const end = await t.runEnd(projectId, run.id);
    expect(end.type).toBe('run.failed');
    expect((end.data as { summary: string }).summary).toContain('uncommitted changes to tracked files (test/old.test.js)');
    expect(t.model.requests).toHaveLength(0);
    expect(git(ws, 'status', '--porcelain')).toBe('M test/old.test.js');
  });

  it('the baseline names tests already failing: told to the model, recorded once per commit, and a task that breaks nothing completes unverified', async () => {
    t = await startTestRuntime(() => answer);
    const projectId = await t.project({ name: 'baseline', testCommand: 'node --test' });
    const ws = (await t.runtime.getProject(projectId)).workspace;
    seed(ws);
    await t.addTasks(projectId, [{ key: 'add', title: 'Add', description: 'Write lib/add.js with add(a, b)' }]);
    const run = await t.runtime.startRun(projectId);
    const end = await t.runEnd(projectId, run.id);
    expect(end.type).toBe('run.completed');

    const results = (await t.events(projectId)).filter((e) => e.type === 'test.result').map((e) => e.data as Record<string, unknown>);
    expect(results[0]).toMatchObject({ phase: 'baseline', attempt: 0, status: 'failed', failed: 1, passed: 1 });
    expect(results[0]!.failures).toEqual([expect.objectContaining({ name: 'old is broken' })]);
    expect(results[1]).toMatchObject({ phase: 'task', attempt: 1, status: 'failed' });
    // Named to the model as not its doing.
    const prompt = t.model.requests[0]!.text;
    expect(prompt).toContain('Tests that already failed before any change');
    expect(prompt).toContain('- old is broken');
    const task = await t.runtime.getTask(projectId, 'add');
    expect(task).toMatchObject({ status: 'completed', attempts: 1 });
    expect(task.reason).toContain('only tests that already failed before any change still fail (old is broken)');
    // The task shows the baseline it was judged against.
    expect(task.baseline).toMatchObject({ status: 'failed', failed: 1, passed: 1, failing: ['old is broken'], commit: expect.any(String) as string });

    // The task landed: HEAD moved. A run cancelled after its baseline lands nothing, so the next
    // run on the same commit reuses that baseline (told again, marked cached, not stored again).
    const head = git(ws, 'rev-parse', 'HEAD');
    await t.addTasks(projectId, [{ key: 'later', title: 'Later', description: 'Write lib/later.js' }]);
    const second = await t.runtime.startRun(projectId);
    await t.waitForEvent(projectId, (e) => e.runId === second.id && e.type === 'test.result');
    await t.runtime.cancelRun(projectId);
    await t.runEnd(projectId, second.id);
    await t.addTasks(projectId, [{ key: 'last', title: 'Last', description: 'Write lib/last.js' }]);
    const third = await t.runtime.startRun(projectId);
    await t.runEnd(projectId, third.id);
    const baselines = (await t.events(projectId)).filter((e) => e.type === 'test.result' && (e.data as { phase: string }).phase === 'baseline');
    expect(baselines.map((e) => [e.runId, (e.data as { commit?: string }).commit, (e.data as { cached?: boolean }).cached ?? false])).toEqual([
      [run.id, expect.any(String), false],
      [second.id, head, false],
      [third.id, head, true],
    ]);
  });
});
