/**
 * Odd bytes from outside (issue 11): a model answer with U+0000 or a lone surrogate, and test
 * output with NUL and invalid UTF-8, through the real runtime: the suite's database, the real
 * SDK against the scripted Messages API, real git and real test processes. Each paid answer is
 * recorded and billed once, refused content gets a correction with a short reason, and no SQL
 * ever reaches an event, a row or a reason.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TroupeEvent } from '../../src/events/types.ts';
import type { Reply } from '../../src/scripted-model/server.ts';
import { moduleWithTest, writeFiles } from '../support/replies.ts';
import { startTestRuntime, type TestRuntime } from '../support/runtime.ts';

/** A test command that prints a NUL and two bytes that are not UTF-8, then runs a real test. */
const runner = (passes: boolean) =>
  'process.stdout.write(Buffer.from([0x62, 0x79, 0x74, 0x65, 0x73, 0x3a, 0x00, 0xff, 0xfe, 0x0a]));\n' +
  `const test = require('node:test');\ntest('odd bytes', () => { if (!${passes}) throw new Error('failing on purpose'); });\n`;

/** What the scripted model answers, by task key (each test has its own project and key). */
const answers: Record<string, (attempt: number) => Reply> = {
  // A file content with NUL, an explanation with NUL and a lone surrogate; then a good answer.
  bin: (attempt) =>
    attempt === 1 ? writeFiles({ 'lib/bin.js': 'exports.value = () => "a\u0000b";\n' }, 'wrote a NUL \u0000 and a lone \ud800 surrogate') : moduleWithTest('bin', 'ok'),
  spend: () => writeFiles({ 'lib/spend.js': 'nul \u0000 here' }, 'explanation \u0000'),
  odd: (attempt) => writeFiles({ 'run.js': runner(attempt > 1) }),
};

let t: TestRuntime;
beforeAll(async () => {
  t = await startTestRuntime((req) => answers[req.taskKey!]!(req.attempt ?? 1));
});
afterAll(() => t.close());

/** Everything a user can read about a task, as one string: events, rows, reasons. */
async function everythingSaid(projectId: string, key: string): Promise<string> {
  const events = await t.events(projectId);
  const task = await t.runtime.getTask(projectId, key);
  const runs = await t.runtime.listRuns(projectId);
  return JSON.stringify({ events, task, runs });
}

const noSql = (text: string) => {
  expect(text).not.toMatch(/Failed query|insert into|params:/i);
};

const paidCalls = (key: string) => t.model.requests.filter((r) => r.taskKey === key).map((r) => r.attempt);

describe('a model answer with NUL or a lone surrogate', () => {
  it('is recorded and billed once, its file content is refused with a clear reason, and the correction completes the task', async () => {
    const projectId = await t.project({ name: 'nul-answer', testCommand: 'node --test', config: { maxCorrectionAttempts: 2 } });
    await t.addTasks(projectId, [{ key: 'bin', title: 'Binary module', description: 'Write lib/bin.js' }]);
    const run = await t.runtime.startRun(projectId);
    const end = await t.runEnd(projectId, run.id);

    expect(end.type).toBe('run.completed');
    expect(paidCalls('bin')).toEqual([1, 2]);
    const task = await t.runtime.getTask(projectId, 'bin');
    expect(task).toMatchObject({ status: 'completed', attempts: 2 });
    // Both answers are billed: two usage rows, two llm.usage events, a priced total.
    expect(task.usage).toMatchObject({ inputTokens: 2 * 1200, outputTokens: 2 * 400 });
    expect(task.usage.costUsd).toBeGreaterThan(0);
    const events = await t.events(projectId);
    expect(events.filter((e) => e.type === 'llm.usage')).toHaveLength(2);
    const correction = events.find((e): e is Extract<TroupeEvent, { type: 'correction.attempt' }> => e.type === 'correction.attempt')!;
    expect(correction.data.errorSummary).toMatch(/^invalid write_files input: file content contains NUL bytes \(lib\/bin\.js/);
    expect(correction.data.errorSummary!.length).toBeLessThan(400);
    const said = await everythingSaid(projectId, 'bin');
    noSql(said);
    expect(said).not.toContain('\\u0000');
    // The correction request names the refusal; it carries no NUL itself.
    const second = t.model.requests.find((r) => r.taskKey === 'bin' && r.attempt === 2)!;
    expect(second.text).toContain('file content contains NUL bytes');
    expect(second.text).not.toContain('\u0000');
  });

  it('with a budget of $0.002 and answers that are always refused: one call per attempt, the spend counted, budget.exceeded', async () => {
    const projectId = await t.project({ name: 'nul-budget', testCommand: 'node --test', config: { budgetUsd: 0.002, maxCorrectionAttempts: 10 } });
    await t.addTasks(projectId, [{ key: 'spend', title: 'Binary module', description: 'Write lib/spend.js' }]);
    const run = await t.runtime.startRun(projectId);
    const end = await t.runEnd(projectId, run.id);

    expect(end.type).toBe('run.blocked');
    const attempts = paidCalls('spend');
    expect(new Set(attempts).size).toBe(attempts.length);
    // The first answer alone costs more than the budget.
    expect(attempts).toEqual([1]);
    const events = await t.events(projectId);
    expect(events.filter((e) => e.type === 'budget.exceeded')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'llm.usage')).toHaveLength(1);
    const project = await t.runtime.getProject(projectId);
    expect(project.usage.costUsd).toBeGreaterThan(0.002);
    expect((await t.runtime.getTask(projectId, 'spend')).blockedReason).toBe('budget_exhausted');
    noSql(await everythingSaid(projectId, 'spend'));
  });
});

describe('test output with NUL and invalid UTF-8', () => {
  it('is stored and shown with the bytes made visible, quoted without NUL in the correction, and a passing run passes', async () => {
    const projectId = await t.project({ name: 'nul-output', testCommand: ['node', 'run.js'] });
    await t.addTasks(projectId, [{ key: 'odd', title: 'Odd output', description: 'Write run.js' }]);
    const run = await t.runtime.startRun(projectId);
    const end = await t.runEnd(projectId, run.id);

    expect(end.type).toBe('run.completed');
    expect(paidCalls('odd')).toEqual([1, 2]);
    const task = await t.runtime.getTask(projectId, 'odd');
    expect(task).toMatchObject({ status: 'completed', attempts: 2 });
    expect(task.testResults.map((r) => [r.status, r.passed, r.failed])).toEqual([
      ['failed', 0, 1],
      ['passed', 1, 0],
    ]);
    for (const result of task.testResults) expect(result.output).toContain('bytes:\u2400\ufffd\ufffd');
    const correction = t.model.requests.find((r) => r.taskKey === 'odd' && r.attempt === 2)!;
    expect(correction.text).toContain('failing on purpose');
    expect(correction.text).toContain('bytes:\u2400');
    expect(correction.text).not.toContain('\u0000');
    noSql(await everythingSaid(projectId, 'odd'));
  });
});
