/**
 * The worker's steps against real git and real files, with the database ports in memory: a step
 * run again after a crash that followed the landing completes with the same commit (no second
 * commit, no second `commit.created`), and a process with another data dir rebuilds the task's
 * tree under its own from the task branch plus the recorded answers (tests run there, its attempt
 * records are rebuilt, nothing under the first data dir changes). Also: what a cancelled task
 * leaves behind.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { createActor, toPromise, type AnyActorLogic } from 'xstate';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createWorkerEffects, taskAttemptsDir, type WorkerRecorder } from '../../../src/actors/worker-effects.ts';
import { generationKey } from '../../../src/actors/model/generate.ts';
import type { ModelJournal } from '../../../src/actors/model/journal.ts';
import { taskChanges } from '../../../src/actors/workspace/attempts.ts';
import type { Job } from '../../../src/machines/types.ts';
import { removeTempDirs, repoWith, sh, snapshot, tempDir } from './helpers.ts';

afterEach(removeTempDirs);

type Files = Record<string, string>;

function answer(files: Files): Anthropic.Message {
  return {
    id: 'msg',
    type: 'message',
    role: 'assistant',
    model: 'm',
    stop_reason: 'tool_use',
    stop_sequence: null,
    content: [{ type: 'tool_use', id: 'tu', name: 'write_files', input: { files: Object.entries(files).map(([p, content]) => ({ path: p, action: 'modify', content })), explanation: 'x' } }],
    usage: { input_tokens: 1, output_tokens: 1 },
  } as unknown as Anthropic.Message;
}

interface Recorded {
  type: string;
  attempt?: number;
  sha?: string;
}

/** One process's effects: its own data dir, the shared (in-memory) answers. */
function processWith(dataDir: string, answers: Map<string, Anthropic.Message>, events: Recorded[]) {
  const journal: ModelJournal = {
    find: async (_projectId, callKey) => answers.get(callKey) ?? null,
    record: async (call) => {
      answers.set(call.callKey, call.response);
      return call.response;
    },
  };
  const recorder: WorkerRecorder = {
    filesApplied: async (_s, attempt) => void events.push({ type: 'files.applied', attempt }),
    filesRejected: async (_s, attempt) => void events.push({ type: 'files.rejected', attempt }),
    testResult: async (_s, _e, attempt, result) => void events.push({ type: `test.${result.status}`, attempt }),
    corrections: async () => undefined,
    // Once per commit, as the database recorder does.
    commitCreated: async (_s, commit) => {
      if (!events.some((e) => e.type === 'commit.created' && e.sha === commit.sha)) events.push({ type: 'commit.created', sha: commit.sha });
    },
  };
  return createWorkerEffects({
    // Every answer is recorded: the client is never called.
    client: new Anthropic({ apiKey: 'unused', baseURL: 'http://127.0.0.1:9' }),
    journal,
    tasks: { loadTask: async () => ({ key: 't', title: 'T', description: '', guidance: null }) },
    budget: { budgetOf: async () => ({ spentUsd: 0, budgetUsd: null }) },
    maxTokens: 100,
    recorder,
    worktreesRoot: path.join(dataDir, 'worktrees'),
    attemptsRoot: path.join(dataDir, 'attempts'),
    childEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    sandboxHide: [],
    lockProject: () => (fn) => fn(),
  });
}

type Effects = ReturnType<typeof processWith>;

async function run<T>(logic: AnyActorLogic, input: unknown): Promise<T> {
  const actor = createActor(logic, { input });
  actor.start();
  return (await toPromise(actor)) as T;
}

// The test command notes where it ran (in the tree, ignored by git) and passes.
const testCommand = ['node', '-e', "require('fs').appendFileSync('cwd.log', process.cwd() + '\\n'); console.log('# tests 1\\n# pass 1')"];

let ws: string;
let job: Job;
const answers = new Map<string, Anthropic.Message>();

beforeEach(async () => {
  ws = await repoWith({ 'README.md': 'base\n', '.gitignore': 'cwd.log\n' });
  answers.clear();
  answers.set(generationKey('task-1', 1, 1), answer({ 'src/x.js': 'one\n' }));
  answers.set(generationKey('task-1', 1, 2), answer({ 'src/x.js': 'two\n', 'src/y.js': 'y\n' }));
  job = {
    taskId: 'task-1',
    key: 't',
    epoch: 1,
    startAttempt: 1,
    mode: 'work',
    review: null,
    guidance: null,
    settings: {
      projectId: 'p1',
      runId: 'r1',
      workspace: ws,
      isolation: 'worktree',
      testCommand,
      testTimeoutMs: 20_000,
      maxCorrections: 2,
      model: 'm',
      sandbox: { mode: 'none', network: false },
      review: 'protected',
      protectedPaths: ['package.json'],
    },
  };
});

const agentId = 'backend-1';
const prepare = (fx: Effects) => run<{ treePath: string }>(fx.prepare, { agentId, job });
const apply = (fx: Effects, attempt: number, treePath: string) => run<{ kind: string }>(fx.apply, { agentId, job, attempt, treePath, callKey: generationKey(job.taskId, 1, attempt) });
const test = (fx: Effects, attempt: number, treePath: string) => run<{ status: string }>(fx.test, { agentId, agentType: 'backend', job, attempt, treePath });
const commit = (fx: Effects, attempt: number, treePath: string) =>
  run<{ kind: string; sha: string | null; files: string[] }>(fx.commit, { agentId, job, attempt, treePath, files: [], verified: true });

describe('a step run again after the task landed', () => {
  it.each(['apply', 'test', 'commit'] as const)('%s of the last attempt, restored from before the merge, completes with the same commit and reports it once', async (step) => {
    const events: Recorded[] = [];
    const fx = processWith(await tempDir(), answers, events);
    const { treePath } = await prepare(fx);
    await apply(fx, 1, treePath);
    await apply(fx, 2, treePath);
    expect(await test(fx, 2, treePath)).toMatchObject({ status: 'passed' });
    const first = await commit(fx, 2, treePath);
    expect(first).toMatchObject({ kind: 'committed', files: ['src/x.js', 'src/y.js'] });
    expect(existsSync(treePath)).toBe(false);
    const count = sh(ws, 'rev-list', '--count', 'HEAD');

    // The crash came after the merge and the cleanup; the restored worker is back before them.
    if (step === 'apply') expect(await apply(fx, 2, treePath)).toMatchObject({ kind: 'applied' });
    if (step !== 'commit') expect(await test(fx, 2, treePath)).toMatchObject({ status: 'passed' });
    expect(await commit(fx, 2, treePath)).toEqual(first);
    expect(sh(ws, 'rev-list', '--count', 'HEAD')).toBe(count);
    expect(events.filter((e) => e.type === 'commit.created')).toHaveLength(1);
    expect(sh(ws, 'status', '--porcelain')).toBe('');
  });

  it('apply of an earlier attempt, restored from before a correction: the attempts replay and the task lands once', async () => {
    const events: Recorded[] = [];
    const fx = processWith(await tempDir(), answers, events);
    const { treePath } = await prepare(fx);
    await apply(fx, 1, treePath);
    await apply(fx, 2, treePath);
    const first = await commit(fx, 2, treePath);
    await apply(fx, 1, treePath);
    await apply(fx, 2, treePath);
    expect(await commit(fx, 2, treePath)).toEqual(first);
    expect(sh(ws, 'log', '--format=%s')).toBe('T (t)\nbase');
  });
});

describe('a restart on the same data dir', () => {
  it("a git lock left in the task's tree by a process killed mid-commit is cleared by the next life", async () => {
    const dir = await tempDir();
    const first = processWith(dir, answers, []);
    const { treePath } = await prepare(first);
    await apply(first, 1, treePath);
    await writeFile(path.join(sh(treePath, 'rev-parse', '--absolute-git-dir'), 'index.lock'), '');
    const second = processWith(dir, answers, []);
    expect(await commit(second, 1, treePath)).toMatchObject({ kind: 'committed', files: ['src/x.js'] });
  });
});

describe('a process with another data dir continues the task', () => {
  it('rebuilds the tree under its own data dir from the branch and the recorded answers, runs the tests there, and writes nothing under the other', async () => {
    const dirA = await tempDir();
    const dirB = await tempDir();
    const fxA = processWith(dirA, answers, []);
    const eventsB: Recorded[] = [];
    const fxB = processWith(dirB, answers, eventsB);
    const { treePath: treeA } = await prepare(fxA);
    await apply(fxA, 1, treeA);
    await apply(fxA, 2, treeA);
    // A dies here, its tree in place; B's restored worker still names A's tree.
    const before = snapshot(dirA);
    expect(await test(fxB, 2, treeA)).toMatchObject({ status: 'passed' });
    const treeB = path.join(dirB, 'worktrees', 'p1', 't');
    expect(await readFile(path.join(treeB, 'cwd.log'), 'utf8')).toBe(`${treeB}\n`);
    expect(await readFile(path.join(treeB, 'src/x.js'), 'utf8')).toBe('two\n');
    expect(await readFile(path.join(treeB, 'src/y.js'), 'utf8')).toBe('y\n');
    expect(sh(treeB, 'rev-parse', '--abbrev-ref', 'HEAD')).toBe('troupe/t');
    // B's own attempt records say what the task changed, as A's do.
    const changes = (dir: string) => taskChanges(taskAttemptsDir(path.join(dir, 'attempts'), 'p1', 'task-1'), 1);
    expect((await changes(dirB)).map((c) => c.path)).toEqual((await changes(dirA)).map((c) => c.path));
    expect((await changes(dirB)).map((c) => c.path)).toEqual(['src/x.js', 'src/y.js']);

    expect(await commit(fxB, 2, treeA)).toMatchObject({ kind: 'committed', files: ['src/x.js', 'src/y.js'] });
    expect(sh(ws, 'log', '--format=%s')).toBe('T (t)\nbase');
    expect(sh(ws, 'show', 'HEAD:src/x.js')).toBe('two');
    expect(snapshot(dirA)).toEqual(before);
  });

  it('a tree of this process that is behind (it lost the run, another went on) is rebuilt, not reused', async () => {
    const dirA = await tempDir();
    const fxA = processWith(dirA, answers, []);
    const fxB = processWith(await tempDir(), answers, []);
    const { treePath: treeA } = await prepare(fxA);
    await apply(fxA, 1, treeA);
    // B took over and applied attempt 2; now A has the run again, at B's attempt 2.
    await apply(fxB, 2, treeA);
    expect(await test(fxA, 2, treeA)).toMatchObject({ status: 'passed' });
    expect(await readFile(path.join(treeA, 'src/y.js'), 'utf8')).toBe('y\n');
    expect(await commit(fxA, 2, treeA)).toMatchObject({ kind: 'committed', files: ['src/x.js', 'src/y.js'] });
  });
});

describe('a change under review, continued by a process with another data dir', () => {
  const reviewed = async () => {
    answers.set(generationKey('task-1', 1, 1), answer({ 'package.json': '{"scripts":{}}\n', 'src/x.js': 'one\n' }));
    const dirA = await tempDir();
    const fxA = processWith(dirA, answers, []);
    const { treePath } = await prepare(fxA);
    await apply(fxA, 1, treePath);
    const out = await commit(fxA, 1, treePath);
    expect(out).toMatchObject({ kind: 'review' });
    const review = (out as unknown as { review: Job['review'] }).review!;
    return { dirA, treePath, review, before: snapshot(dirA) };
  };

  it('approved: lands the reviewed commit from its branch', async () => {
    const { dirA, treePath, review, before } = await reviewed();
    const fxB = processWith(await tempDir(), answers, []);
    job = { ...job, mode: 'land', review: { ...review, decision: 'approved' } };
    const prepared = await prepare(fxB);
    expect(prepared.treePath).not.toBe(treePath);
    expect(await run(fxB.land, { agentId, job })).toMatchObject({ kind: 'committed', files: ['package.json', 'src/x.js'] });
    expect(sh(ws, 'log', '--format=%s')).toBe('T (t)\nbase');
    expect(snapshot(dirA)).toEqual(before);
  });

  it('rejected with guidance: the attempt is undone in the rebuilt tree, and the correction builds on what was there before it', async () => {
    const { dirA, treePath, review, before } = await reviewed();
    const fxB = processWith(await tempDir(), answers, []);
    job = { ...job, mode: 'revise', review: { ...review, decision: 'rejected' }, guidance: 'leave package.json alone' };
    const { treePath: treeB } = await prepare(fxB);
    await run(fxB.discard, { agentId, job, treePath });
    expect(existsSync(path.join(treeB, 'src/x.js'))).toBe(false);
    expect(await readFile(path.join(treeB, 'README.md'), 'utf8')).toBe('base\n');
    answers.set(generationKey('task-1', 1, 2), answer({ 'src/x.js': 'two\n' }));
    await apply(fxB, 2, treePath);
    expect(await commit(fxB, 2, treePath)).toMatchObject({ kind: 'committed', files: ['src/x.js'] });
    expect(sh(ws, 'show', 'HEAD:src/x.js')).toBe('two');
    expect(sh(ws, 'ls-tree', '--name-only', 'HEAD')).not.toContain('package.json');
    expect(snapshot(dirA)).toEqual(before);
  });
});

describe('cleanup', () => {
  it('a cancelled task leaves no worktree (its branch stays)', async () => {
    const fx = processWith(await tempDir(), answers, []);
    const { treePath } = await prepare(fx);
    await apply(fx, 1, treePath);
    await run(fx.release, { agentId, job });
    expect(existsSync(treePath)).toBe(false);
    expect(sh(ws, 'worktree', 'list').split('\n')).toHaveLength(1);
    expect(sh(ws, 'branch', '--list', 'troupe/t', '--format=%(refname:short)')).toBe('troupe/t');
  });
});
