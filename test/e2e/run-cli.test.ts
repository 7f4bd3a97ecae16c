/**
 * `troupe run PLAN.json` and `troupe demo` as real child processes: exit codes, JSON lines,
 * validation messages naming the field, Ctrl-C, and the demo's workspace.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startScriptedModel, type Responder, type ScriptedModel } from '../../src/scripted-model/server.ts';
import { troupe } from '../support/cli.ts';
import { isolatedDatabase } from '../support/db.ts';
import { moduleWithTest } from '../support/replies.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'troupe-runcli-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** An empty git repository at `dir` (an explicit workspace must exist). */
async function repo(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main'], { cwd: dir });
  return dir;
}

async function model(respond: Responder): Promise<ScriptedModel> {
  const m = await startScriptedModel(respond);
  cleanups.push(() => m.close());
  return m;
}

/** Environment for a run against the scripted model (and an isolated database on the Postgres pass). */
async function envFor(m: ScriptedModel): Promise<Record<string, string>> {
  const db = await isolatedDatabase();
  if (db) cleanups.push(() => db.drop());
  return { ANTHROPIC_BASE_URL: m.url, ANTHROPIC_API_KEY: 'sk-run', TROUPE_MODEL_MAX_RETRIES: '0', ...(db ? { DATABASE_URL: db.url } : {}) };
}

const plan = (workspace: string, extra: Record<string, unknown> = {}) => ({
  name: 'calc',
  testCommand: 'node --test',
  workspace,
  tasks: [
    { key: 'add', title: 'add(a, b)', description: 'lib/add.js' },
    { key: 'sum', title: 'sum(list)', description: 'lib/sum.js', dependsOn: ['add'] },
  ],
  ...extra,
});

describe('troupe run', () => {
  it('runs a plan to completion against the Messages API given by ANTHROPIC_BASE_URL (exit 0); --json prints the events', async () => {
    const m = await model((req) => moduleWithTest(req.taskKey!, 'ok'));
    const dir = await tempDir();
    await writeFile(path.join(dir, 'plan.json'), JSON.stringify(plan('./calc')));
    // A workspace that does not exist is refused before anything is made: a typo is not a new repository.
    const typo = troupe(['run', 'plan.json'], {}, dir);
    expect(await typo.exit).toBe(2);
    expect(typo.stderr()).toMatch(/workspace: .*calc does not exist/);
    await repo(path.join(dir, 'calc'));
    const p = troupe(['run', 'plan.json', '--json'], await envFor(m), dir);
    expect(await p.exit).toBe(0);
    const events = p.stdout().trim().split('\n').map((l) => JSON.parse(l) as { seq: number; type: string });
    expect(events[0]!.type).toBe('task.created');
    expect(events.map((e) => e.type)).toContain('run.completed');
    expect(events.every((e, i) => i === 0 || e.seq > events[i - 1]!.seq)).toBe(true);
    expect(p.stderr()).toMatch(/Run completed: all 2 task\(s\) completed/);
    // The summary's tokens are the run's (the sum of its llm.usage events), in --json mode too.
    const usage = events.filter((e) => e.type === 'llm.usage') as unknown as { data: { inputTokens: number; outputTokens: number; cacheReadTokens: number; cacheWriteTokens: number } }[];
    const tokensIn = usage.reduce((n, e) => n + e.data.inputTokens + e.data.cacheReadTokens + e.data.cacheWriteTokens, 0);
    const tokensOut = usage.reduce((n, e) => n + e.data.outputTokens, 0);
    expect(tokensOut).toBeGreaterThan(0);
    expect(p.stderr()).toContain(`Tokens: ${tokensIn} in, ${tokensOut} out;`);
    // "Commits" lists what this run made, not the repository's history.
    expect(p.stderr()).toMatch(/Commits \(this run\):\n {2}\w+ sum\(list\) \(sum\)\n {2}\w+ add\(a, b\) \(add\)\n\n?$/);
    // The workspace in the plan is relative to the plan file.
    expect(execFileSync('git', ['log', '--format=%s'], { cwd: path.join(dir, 'calc'), encoding: 'utf8' }).trim().split('\n')).toEqual([
      'sum(list) (sum)',
      'add(a, b) (add)',
      'troupe: initial commit',
    ]);
    // The model's explanation is the commit's body.
    expect(execFileSync('git', ['log', '-1', '--format=%b'], { cwd: path.join(dir, 'calc'), encoding: 'utf8' }).trim()).toBe('done');
    expect(m.requests.every((r) => r.authorization === 'Bearer sk-run' || r.apiKey === 'sk-run')).toBe(true);
  });

  it('prints plain progress lines when stdout is not a terminal, and exits 1 when the run ends blocked', async () => {
    const m = await model((req) => moduleWithTest(req.taskKey!, 'broken', req.taskKey === 'add' ? 'fixed' : 'broken'));
    const dir = await tempDir();
    await writeFile(path.join(dir, 'plan.json'), JSON.stringify(plan(await repo(path.join(dir, 'ws')), { config: { maxCorrectionAttempts: 1 } })));
    const p = troupe(['run', path.join(dir, 'plan.json')], await envFor(m));
    expect(await p.exit).toBe(1);
    // Counts and the first failing test, never a made-up "0 passed, 0 failed".
    expect(p.stdout()).toMatch(/^add: attempt 1 tests failed: 1 of 1 failed — `add returns its value`/m);
    // Why it blocked, in words, beside the code.
    expect(p.stdout()).toMatch(/^add: in_progress → blocked \(attempts_exhausted\): .+/m);
    expect(p.stdout()).toMatch(/Run blocked: 0 of 2 task\(s\) completed/);
    expect(p.stdout()).toMatch(/^ {8}why: .+/m);
    expect(p.stdout()).toMatch(/Commits: none/);
    // The blocked task's last attempt is not lost with the run's temporary data dir: it is a
    // commit on its branch, not merged, and the summary says where.
    const ws = path.join(dir, 'ws');
    expect(p.stdout()).toContain(`work: kept on branch troupe/add (1 commit(s) not merged): git -C ${ws} log troupe/add`);
    const kept = execFileSync('git', ['log', '-1', '--format=%B', 'troupe/add'], { cwd: ws, encoding: 'utf8' });
    expect(kept).toMatch(/^troupe: work in progress on add, not merged \(2 attempt\(s\) failed\)\n/);
    expect(kept).toContain('Last failure: ');
    expect(execFileSync('git', ['show', 'troupe/add:lib/add.js'], { cwd: ws, encoding: 'utf8' })).toContain('broken');
    expect(execFileSync('git', ['rev-list', '--count', 'main..troupe/add'], { cwd: ws, encoding: 'utf8' }).trim()).toBe('1');
  });

  it('an invalid plan exits 2 with a message naming the field; so does a cycle', async () => {
    const dir = await tempDir();
    const bad = path.join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ name: 'x', testCommand: 'node --test', tasks: [{ key: 'bad key', title: 'T', description: '' }], colour: 'red' }));
    const p = troupe(['run', bad], {});
    expect(await p.exit).toBe(2);
    expect(p.stderr()).toMatch(/tasks\.0\.key: must match/);
    expect(p.stderr()).toMatch(/colour: unknown field/);

    const cyclic = path.join(dir, 'cycle.json');
    await writeFile(cyclic, JSON.stringify(plan(path.join(dir, 'ws'), { tasks: [{ key: 'a', title: 'A', description: '', dependsOn: ['b'] }, { key: 'b', title: 'B', description: '', dependsOn: ['a'] }] })));
    const c = troupe(['run', cyclic], {});
    expect(await c.exit).toBe(2);
    expect(c.stderr()).toMatch(/dependency cycle: (a → b → a|b → a → b)/);

    const missing = troupe(['run', path.join(dir, 'nope.json')], {});
    expect(await missing.exit).toBe(2);
    expect(missing.stderr()).toMatch(/cannot read the plan/);
    const none = troupe(['run'], {});
    expect(await none.exit).toBe(2);
    expect(none.stderr()).toMatch(/give exactly one plan file/);
  });

  it('Ctrl-C cancels the run cleanly and exits 130', async () => {
    const m = await model(() => ({ kind: 'hang' }));
    const dir = await tempDir();
    await writeFile(path.join(dir, 'plan.json'), JSON.stringify(plan(await repo(path.join(dir, 'ws')))));
    const p = troupe(['run', path.join(dir, 'plan.json')], await envFor(m));
    const request = await m.waitForRequest(() => true);
    p.child.kill('SIGINT');
    expect(await p.exit).toBe(130);
    await m.waitForAbort(request);
    expect(p.stdout()).toMatch(/Run cancelled/);
  });
});

describe('troupe demo', () => {
  it('runs offline (whatever ANTHROPIC_* says) to completion: the workspace holds passing tests and one commit per task', async () => {
    const p = troupe(['demo'], { ANTHROPIC_BASE_URL: 'http://192.0.2.1:9', ANTHROPIC_API_KEY: 'must-not-be-used' });
    expect(await p.exit).toBe(0);
    const out = p.stdout();
    expect(out).toMatch(/Run completed: all 3 task\(s\) completed/);
    expect(out).toMatch(/slugify: correction 1\/3/);
    const workspace = /^Workspace: (.+)$/m.exec(out)![1]!;
    cleanups.push(() => rm(path.dirname(workspace), { recursive: true, force: true }));
    const log = execFileSync('git', ['log', '--format=%s'], { cwd: workspace, encoding: 'utf8' }).trim().split('\n');
    expect(log).toHaveLength(4);
    expect(log.at(-1)).toBe('troupe: initial commit');
    execFileSync(process.execPath, ['--test'], { cwd: workspace, stdio: 'ignore' });
  });
});
