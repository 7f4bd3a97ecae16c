/**
 * The referee is not the player's: through the HTTP API, against the scripted Messages API with
 * real git worktrees and real `node --test` runs. An answer that changes a protected file (or
 * deletes a test) never completes on its own; approve merges it, reject discards it (with
 * guidance: a correction), `review: "never"` refuses it, and the diff route shows what would land.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { MessagesRequest, Reply } from '../../src/scripted-model/server.ts';
import type { TroupeEvent } from '../../src/events/types.ts';
import { writeFiles } from '../support/replies.ts';
import { startTestApp, type TestApp } from '../support/app.ts';

let current: TestApp | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await current?.close();
  current = undefined;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();

const calc = (value: number) => ({
  'lib/calc.js': `exports.answer = () => ${value};\n`,
  'test/calc.test.js':
    "const test = require('node:test');\nconst assert = require('node:assert');\nconst { answer } = require('../lib/calc.js');\n" +
    `test('answer', () => assert.strictEqual(answer(), ${value}));\n`,
});
/** What a model does to make a red run green: swap the test script for `exit 0`. */
const cheatingPackage = JSON.stringify({ name: 'calc', scripts: { test: 'exit 0' } }, null, 2);

/** A git workspace with one commit holding `files`. */
async function workspace(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'troupe-review-'));
  dirs.push(dir);
  for (const [p, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, p)), { recursive: true });
    await writeFile(path.join(dir, p), content);
  }
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'add', '-A');
  git(dir, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-q', '--allow-empty', '-m', 'base');
  return dir;
}

async function setup(respond: (req: MessagesRequest) => Reply, files: Record<string, string>, config: Record<string, unknown> = {}) {
  const t = await startTestApp(async (req) => respond(req));
  current = t;
  const ws = await workspace(files);
  const created = await t.json<{ id: string }>('POST', '/api/projects', {
    name: 'calc',
    testCommand: 'node --test',
    workspace: ws,
    config: { maxCorrectionAttempts: 1, sandbox: { mode: 'none' }, ...config },
  });
  expect(created.status).toBe(201);
  const id = created.body.id;
  expect((await t.json('POST', `/api/projects/${id}/tasks`, { tasks: [{ key: 'calc', title: 'Calc', description: 'Write lib/calc.js' }] })).status).toBe(201);
  return { id, ws, t };
}

async function start(id: string): Promise<string> {
  const res = await current!.json<{ run: { id: string } }>('POST', `/api/projects/${id}/start`);
  expect(res.status).toBe(202);
  return res.body.run.id;
}

const runEnds = (id: string, after: number) =>
  current!.waitForEvent(id, (e) => e.seq > after && ['run.completed', 'run.blocked', 'run.failed', 'run.cancelled'].includes(e.type));

const lastSeq = async (id: string) => Math.max(0, ...(await current!.events(id)).map((e) => e.seq));
const ofType = <T extends TroupeEvent['type']>(events: TroupeEvent[], type: T) => events.filter((e): e is Extract<TroupeEvent, { type: T }> => e.type === type);

describe('review of changes to the test setup', () => {
  it('a changed test script goes to review, is rejected with guidance, corrected and then completes; the diff shows each attempt', async () => {
    const { id, ws, t } = await setup(
      (req) => (req.attempt === 1 ? writeFiles({ ...calc(42), 'package.json': cheatingPackage }) : writeFiles(calc(42))),
      { 'package.json': JSON.stringify({ name: 'calc', scripts: { test: 'node --test' } }) },
    );
    const head = git(ws, 'rev-parse', 'HEAD');
    const first = runEnds(id, 0);
    await start(id);
    const blocked = await first;
    expect(blocked.type).toBe('run.blocked');
    expect((blocked.data as { summary: string }).summary).toContain('waiting for review (approve or reject): calc');

    const task = await t.json<{ status: string; review: { reason: string; files: string[] } }>('GET', `/api/projects/${id}/tasks/calc`);
    expect(task.body.status).toBe('review');
    expect(task.body.review).toMatchObject({ reason: 'protected_paths', files: ['package.json'], attempt: 1, verified: false });
    // Nothing landed: the workspace branch did not move; the change waits on the task's branch.
    expect(git(ws, 'rev-parse', 'HEAD')).toBe(head);
    expect(git(ws, 'show', 'troupe/calc:package.json')).toContain('exit 0');

    const events = await t.events(id);
    expect(ofType(events, 'task.review_requested').map((e) => e.data)).toEqual([{ key: 'calc', attempt: 1, reason: 'protected_paths', files: ['package.json'] }]);
    // The tests "passed" under the rewritten script, but nobody may call that verified.
    expect(ofType(events, 'test.result').filter((e) => e.data.phase === 'task').map((e) => e.data.verified)).toEqual([false]);

    const diff = await t.request('GET', `/api/projects/${id}/tasks/calc/diff`);
    expect(diff.status).toBe(200);
    expect(diff.headers.get('content-type')).toContain('text/x-diff');
    const text = await diff.text();
    expect(text).toContain('diff --git a/package.json b/package.json');
    expect(text).toContain('+  "scripts": {');
    expect(text).toContain('new file mode 100644\n--- /dev/null\n+++ b/lib/calc.js');
    const json = await t.json<{ files: { path: string; status: string; patch: string }[] }>('GET', `/api/projects/${id}/tasks/calc/diff?format=json`);
    expect(json.body.files.map((f) => [f.path, f.status])).toEqual([
      ['lib/calc.js', 'added'],
      ['package.json', 'modified'],
      ['test/calc.test.js', 'added'],
    ]);
    // What the diff shows is exactly what `git apply` would land on the base.
    const check = path.join(ws, 'check.patch');
    await writeFile(check, text);
    execFileSync('git', ['apply', '--check', check], { cwd: ws });
    await rm(check);

    const resumed = runEnds(id, await lastSeq(id));
    const rejected = await t.json<{ status: string }>('POST', `/api/projects/${id}/tasks/calc/reject`, { guidance: 'Leave package.json alone.' });
    expect(rejected.status).toBe(202);
    expect(rejected.body.status).toBe('pending');
    expect((await resumed).type).toBe('run.completed');

    const done = await t.json<{ status: string; attempts: number }>('GET', `/api/projects/${id}/tasks/calc`);
    expect(done.body).toMatchObject({ status: 'completed', attempts: 2 });
    // The rejected change never landed; the corrected one did.
    expect(git(ws, 'show', 'HEAD:package.json')).toContain('node --test');
    expect(git(ws, 'show', 'HEAD:lib/calc.js')).toContain('42');
    const correction = t.model.requests.find((r) => r.taskKey === 'calc' && r.attempt === 2)!;
    expect(correction.text).toContain('Leave package.json alone.');
    expect(correction.text).toContain('rejected');
    const all = await t.events(id);
    expect(ofType(all, 'task.reviewed').map((e) => e.data)).toEqual([{ key: 'calc', decision: 'rejected', guidance: 'Leave package.json alone.' }]);
    expect(ofType(all, 'test.result').filter((e) => e.data.phase === 'task').map((e) => e.data.verified)).toEqual([false, true]);
    // Attempt 1's diff is still there to read; the task's diff is what landed.
    expect(await (await t.request('GET', `/api/projects/${id}/tasks/calc/diff?attempt=1`)).text()).toContain('package.json');
    expect(await (await t.request('GET', `/api/projects/${id}/tasks/calc/diff`)).text()).not.toContain('package.json');
    expect((await t.request('GET', `/api/projects/${id}/tasks/calc/diff?attempt=7`)).status).toBe(404);
  });

  it('approve merges the reviewed change only then, and the task completes unverified', async () => {
    const { id, ws, t } = await setup(() => writeFiles({ ...calc(1), 'package.json': cheatingPackage }), { 'README.md': 'calc\n' });
    const head = git(ws, 'rev-parse', 'HEAD');
    const first = runEnds(id, 0);
    await start(id);
    expect((await first).type).toBe('run.blocked');
    expect(git(ws, 'rev-parse', 'HEAD')).toBe(head);
    expect(existsSync(path.join(ws, 'package.json'))).toBe(false);

    // Only a task in review can be approved or rejected.
    expect((await t.json('POST', `/api/projects/${id}/tasks/nope/approve`)).status).toBe(404);
    const resumed = runEnds(id, await lastSeq(id));
    const approved = await t.json<{ status: string }>('POST', `/api/projects/${id}/tasks/calc/approve`);
    expect(approved.status).toBe(202);
    expect((await resumed).type).toBe('run.completed');
    const again = await t.json<{ error: { code: string; message: string } }>('POST', `/api/projects/${id}/tasks/calc/approve`);
    expect(again.status).toBe(409);
    expect(again.body.error.message).toContain('only a task in review');

    expect(git(ws, 'show', 'HEAD:package.json')).toContain('exit 0');
    expect(git(ws, 'log', '--format=%s', '-1')).toBe('Calc (calc)');
    const events = await t.events(id);
    expect(ofType(events, 'task.reviewed').map((e) => e.data)).toEqual([{ key: 'calc', decision: 'approved' }]);
    const completed = ofType(events, 'task.status_changed').filter((e) => e.data.to === 'completed');
    expect(completed).toHaveLength(1);
    expect(completed[0]!.data.reason).toContain('not verified');
    // Approved after the merge, not before: review → pending → in_progress → completed.
    expect(ofType(events, 'task.status_changed').map((e) => `${e.data.from}>${e.data.to}`)).toEqual([
      'pending>in_progress',
      'in_progress>review',
      'review>pending',
      'pending>in_progress',
      'in_progress>completed',
    ]);
  });

  it('deleting an existing test file goes to review; rejected without guidance it is undone and the task is blocked', async () => {
    const base = { 'lib/calc.js': 'exports.answer = () => 1;\n', 'test/old.test.js': "require('node:test')('old', () => { throw new Error('red'); });\n" };
    const { id, ws, t } = await setup(() => writeFiles({ 'test/old.test.js': null, 'lib/extra.js': 'exports.x = 1;\n' }), base);
    const first = runEnds(id, 0);
    await start(id);
    expect((await first).type).toBe('run.blocked');
    const task = await t.json<{ status: string; review: { reason: string; files: string[] } }>('GET', `/api/projects/${id}/tasks/calc`);
    expect(task.body.review).toMatchObject({ reason: 'tests_deleted', files: ['test/old.test.js'] });
    const diff = await t.json<{ files: { path: string; status: string }[] }>('GET', `/api/projects/${id}/tasks/calc/diff?format=json`);
    expect(diff.body.files).toContainEqual(expect.objectContaining({ path: 'test/old.test.js', status: 'deleted' }));

    const ended = runEnds(id, await lastSeq(id));
    expect((await t.json('POST', `/api/projects/${id}/tasks/calc/reject`)).status).toBe(202);
    expect((await ended).type).toBe('run.blocked');
    const after = await t.json<{ status: string; blockedReason: string }>('GET', `/api/projects/${id}/tasks/calc`);
    expect(after.body).toMatchObject({ status: 'blocked', blockedReason: 'review_rejected' });
    // Nothing of the rejected change is anywhere: not in the workspace, not on the task's branch tip.
    expect(git(ws, 'ls-files')).toContain('test/old.test.js');
    expect(git(ws, 'rev-parse', 'troupe/calc')).toBe(git(ws, 'rev-parse', 'HEAD'));
    expect(t.model.requests.filter((r) => r.taskKey === 'calc')).toHaveLength(1);
  });

  it('review: "never" refuses an answer that changes a protected file: nothing written, a failed attempt', async () => {
    const { id, ws, t } = await setup(() => writeFiles({ ...calc(3), 'package.json': cheatingPackage }), { 'README.md': 'x\n' }, { review: 'never', maxCorrectionAttempts: 0 });
    const first = runEnds(id, 0);
    await start(id);
    expect((await first).type).toBe('run.blocked');
    const events = await t.events(id);
    const rejected = ofType(events, 'files.rejected');
    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.data).toMatchObject({ attempt: 1, path: 'package.json' });
    expect(rejected[0]!.data.reason).toContain('protected');
    // Only the baseline ran: no attempt reached its tests.
    expect(ofType(events, 'test.result').map((e) => e.data.phase)).toEqual(['baseline']);
    const task = await t.json<{ status: string; blockedReason: string }>('GET', `/api/projects/${id}/tasks/calc`);
    expect(task.body).toMatchObject({ status: 'blocked', blockedReason: 'attempts_exhausted' });
    expect(existsSync(path.join(ws, 'package.json'))).toBe(false);
  });

  it('review: "always" sends an ordinary passing change to review, and approving it completes verified', async () => {
    const { id, ws, t } = await setup(() => writeFiles(calc(5)), { 'README.md': 'x\n' }, { review: 'always' });
    const first = runEnds(id, 0);
    await start(id);
    expect((await first).type).toBe('run.blocked');
    const task = await t.json<{ review: { reason: string; verified: boolean } }>('GET', `/api/projects/${id}/tasks/calc`);
    expect(task.body.review).toMatchObject({ reason: 'always', verified: true });
    const resumed = runEnds(id, await lastSeq(id));
    expect((await t.json('POST', `/api/projects/${id}/tasks/calc/approve`)).status).toBe(202);
    expect((await resumed).type).toBe('run.completed');
    expect(git(ws, 'show', 'HEAD:lib/calc.js')).toContain('5');
    const completed = ofType(await t.events(id), 'task.status_changed').find((e) => e.data.to === 'completed')!;
    expect(completed.data.reason).toBeUndefined();
  });

  it('in a plain directory (shared mode) a rejected change is undone in place: the files are as they were', async () => {
    const t = await startTestApp(async () => writeFiles({ ...calc(7), 'package.json': cheatingPackage }));
    current = t;
    const ws = await mkdtemp(path.join(os.tmpdir(), 'troupe-review-shared-'));
    dirs.push(ws);
    const original = JSON.stringify({ name: 'calc', scripts: { test: 'node --test' } });
    await writeFile(path.join(ws, 'package.json'), original);
    const created = await t.json<{ id: string; config: { isolation: string } }>('POST', '/api/projects', {
      name: 'shared',
      testCommand: 'node --test',
      workspace: ws,
      config: { maxCorrectionAttempts: 0, sandbox: { mode: 'none' } },
    });
    expect(created.body.config.isolation).toBe('shared');
    const id = created.body.id;
    await t.json('POST', `/api/projects/${id}/tasks`, { tasks: [{ key: 'calc', title: 'Calc', description: 'Write lib/calc.js' }] });
    const first = runEnds(id, 0);
    await start(id);
    expect((await first).type).toBe('run.blocked');
    expect((await t.json<{ status: string }>('GET', `/api/projects/${id}/tasks/calc`)).body.status).toBe('review');
    const ended = runEnds(id, await lastSeq(id));
    expect((await t.json('POST', `/api/projects/${id}/tasks/calc/reject`)).status).toBe(202);
    expect((await ended).type).toBe('run.blocked');
    expect(await readFile(path.join(ws, 'package.json'), 'utf8')).toBe(original);
    expect(existsSync(path.join(ws, 'lib/calc.js'))).toBe(false);
    expect(existsSync(path.join(ws, 'test/calc.test.js'))).toBe(false);
  });
});
