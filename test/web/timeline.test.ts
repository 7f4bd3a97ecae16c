/**
 * A task's timeline folded from a real run's event log: a task whose first answer fails its own
 * test and whose correction passes is two attempts, each with its model call, files and test run,
 * the correction between them and the commit at the end — what the task detail route says too
 * (attempts, test results, corrections, usage, commit). And a retry starts a new round of attempts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { moduleWithTest } from '../support/replies.ts';
import { startTestRuntime, type TestRuntime } from '../support/runtime.ts';
import type { LogEvent } from '../../web/src/replay.ts';
import { callTotals, taskTimeline } from '../../web/src/timeline.ts';

let t: TestRuntime | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('task timeline', () => {
  it('a corrected task is two attempts, as the task detail says: usage, files, test results, the correction between, the commit at the end', async () => {
    let bAsked = 0;
    t = await startTestRuntime((req) => {
      if (req.taskKey === 'b') bAsked++;
      return moduleWithTest(req.taskKey!, req.taskKey === 'b' && bAsked === 1 ? 'wrong' : 'ok', 'ok');
    });
    const projectId = await t.project({ name: 'timeline', testCommand: 'node --test' });
    await t.addTasks(projectId, [
      { key: 'a', title: 'A', description: '' },
      { key: 'b', title: 'B', description: '', dependsOn: ['a'] },
    ]);
    const run = await t.runtime.startRun(projectId);
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.completed');
    const log = (await t.events(projectId)) as unknown as LogEvent[];
    const task = await t.runtime.getTask(projectId, 'b');

    const { attempts, currentRound } = taskTimeline(log, task.id);
    expect(currentRound).toBe(0);
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2]);
    expect(attempts).toHaveLength(task.attempts);
    const [first, second] = attempts as [(typeof attempts)[0], (typeof attempts)[0]];

    // Usage per call: one model call each (generate, then correct), summing to the task's usage.
    const calls = log.filter((e) => e.type === 'llm.usage' && e.taskId === task.id);
    expect(first.calls.map((c) => c.purpose)).toEqual(['generate']);
    expect(second.calls.map((c) => c.purpose)).toEqual(['correct']);
    expect([...first.calls, ...second.calls].map((c) => c.seq)).toEqual(calls.map((e) => e.seq));
    expect(first.calls[0]!.inputTokens).toBe(calls[0]!.data.inputTokens);
    expect(first.calls[0]!.model).toBe(calls[0]!.data.model);
    const total = callTotals([...first.calls, ...second.calls]);
    expect(total.inputTokens).toBe(task.usage.inputTokens);
    expect(total.outputTokens).toBe(task.usage.outputTokens);
    expect(total.cacheReadTokens).toBe(task.usage.cacheReadTokens);
    expect(total.costUsd).toBeCloseTo(task.usage.costUsd!, 10);

    // What each attempt wrote, and its test run, as the detail's testResults say.
    expect(first.applied!.files.map((f) => f.path).sort()).toEqual(['lib/b.js', 'test/b.test.js']);
    expect(first.applied!.explanation).toBe('done');
    expect(second.applied!.files.map((f) => f.path).sort()).toEqual(task.filesChanged.slice().sort());
    const own = task.testResults.filter((r) => r.phase !== 'baseline');
    expect(attempts.flatMap((a) => a.tests.map((r) => [a.attempt, r.status, r.passed, r.failed, r.total, r.phase]))).toEqual(
      own.map((r) => [r.attempt, r.status, r.passed, r.failed, r.total, r.phase]),
    );
    expect(first.tests[0]!.status).toBe('failed');
    expect(first.tests[0]!.failures.map((f) => f.name)).toEqual(own[0]!.failures.map((f) => f.name));
    expect(first.tests[0]!.failures[0]!.name).toBe('b returns its value');
    expect(second.tests[0]!.status).toBe('passed');

    // The correction between them: none before the first; the second is correction 1, succeeded.
    expect(first.correction).toBeNull();
    expect(task.corrections).toHaveLength(1);
    expect(second.correction).toEqual({ number: task.corrections[0]!.attempt, maxAttempts: 3, status: task.corrections[0]!.status, errorSummary: task.corrections[0]!.errorSummary });
    expect(second.correction!.status).toBe('succeeded');

    // The commit at the end, and the status it led to; the failed first attempt ended nothing.
    expect(first.commit).toBeNull();
    expect(first.outcome).toBeNull();
    expect(second.commit!.sha).toBe(task.commit);
    expect(second.commit!.message).toContain('B (b)');
    expect(second.outcome).toMatchObject({ status: 'completed', blockedReason: null });

    // The other task, not corrected: one attempt of its own, none of b's events.
    const a = await t.runtime.getTask(projectId, 'a');
    expect(taskTimeline(log, a.id).attempts.map((x) => [x.attempt, x.tests.map((r) => r.status), x.correction])).toEqual([[1, ['passed'], null]]);
  });

  it('a retry starts a new round counted from 1; counts not understood stay null; a merge conflict ends the attempt', () => {
    let seq = 0;
    const ev = (type: string, data: Record<string, unknown>, taskId: string | null = 't1'): LogEvent => ({ seq: ++seq, type, runId: 'r', taskId, agentId: null, at: '', data });
    const usage = (purpose: string) => ev('llm.usage', { model: 'm', inputTokens: 10, outputTokens: 5, cacheReadTokens: 2, cacheWriteTokens: 1, costUsd: null, durationMs: 7, purpose });
    const log = [
      ev('test.result', { attempt: 0, phase: 'baseline', status: 'failed' }, null),
      ev('task.status_changed', { key: 'k', from: 'pending', to: 'in_progress' }),
      usage('generate'),
      ev('files.rejected', { attempt: 1, reason: 'path escapes the workspace', path: '../x' }),
      ev('task.status_changed', { key: 'k', from: 'in_progress', to: 'blocked', blockedReason: 'attempts_exhausted' }),
      ev('task.status_changed', { key: 'k', from: 'blocked', to: 'pending' }),
      ev('task.status_changed', { key: 'k', from: 'pending', to: 'in_progress' }),
      usage('generate'),
      ev('files.applied', { attempt: 1, files: [{ path: 'a.js', action: 'modify', bytes: 3 }], explanation: 'again' }),
      ev('test.result', { attempt: 1, phase: 'task', status: 'passed', passed: null, failed: null, total: null, failures: [] }),
      ev('task.status_changed', { key: 'k', from: 'in_progress', to: 'blocked', blockedReason: 'merge_conflict' }),
      ev('llm.usage', { purpose: 'generate' }, 'other'),
    ];
    const { attempts, currentRound } = taskTimeline(log, 't1');
    expect(currentRound).toBe(1);
    expect(attempts.map((a) => [a.round, a.attempt])).toEqual([
      [0, 1],
      [1, 1],
    ]);
    expect(attempts[0]!.rejected).toEqual([{ reason: 'path escapes the workspace', path: '../x' }]);
    expect(attempts[0]!.outcome).toMatchObject({ status: 'blocked', blockedReason: 'attempts_exhausted' });
    expect(attempts[1]!.tests[0]).toMatchObject({ status: 'passed', passed: null, failed: null, total: null });
    expect(attempts[1]!.outcome).toMatchObject({ status: 'blocked', blockedReason: 'merge_conflict' });
    expect(callTotals(attempts[1]!.calls)).toEqual({ inputTokens: 10, outputTokens: 5, cacheReadTokens: 2, cacheWriteTokens: 1, costUsd: null, durationMs: 7 });
  });
});
