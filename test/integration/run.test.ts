/**
 * End-to-end runs through the runtime with real parts: the suite's database, the real SDK
 * against the scripted Messages API, real git worktrees and real `node --test` processes.
 */
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import type { MessagesRequest, Reply } from '../../src/scripted-model/server.ts';
import { deferred } from '../support/deferred.ts';
import { moduleWithTest } from '../support/replies.ts';
import { startTestRuntime, type TestRuntime } from '../support/runtime.ts';

let t: TestRuntime | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();

describe('a project run', () => {
  it('runs 7 tasks with dependencies to completed: concurrency capped, dependencies first, a failing attempt corrected', async () => {
    const violations: string[] = [];
    const firstSeen = new Set<string>();
    let projectId = '';
    const deps: Record<string, string[]> = { api: ['core', 'util'], ui: ['api'], widget: ['core'], e2e: ['ui', 'widget'] };
    // `core` and `util` are ready together: each answer waits for the other request, so two
    // calls are in flight at once for sure (a handshake, not a timing bet).
    const both = { core: deferred(), util: deferred() };
    t = await startTestRuntime(async (req: MessagesRequest): Promise<Reply> => {
      const key = req.taskKey!;
      if (key === 'core' || key === 'util') {
        both[key].resolve();
        await Promise.all([both.core.promise, both.util.promise]);
      }
      if (!firstSeen.has(key)) {
        firstSeen.add(key);
        for (const dep of deps[key] ?? []) {
          const status = (await t!.runtime.getTask(projectId, dep)).status;
          if (status !== 'completed') violations.push(`${key} called while ${dep} was ${status}`);
        }
      }
      // `api` first ships a module whose test fails; the correction fixes it.
      const reply = key === 'api' && req.attempt === 1 ? moduleWithTest(key, 'wrong', 'ok') : moduleWithTest(key, 'ok');
      return { kind: 'delay', ms: 40, then: reply };
    });
    projectId = await t.project({ name: 'seven', testCommand: 'node --test', config: { maxConcurrency: 2, maxCorrectionAttempts: 2 } });
    await t.addTasks(projectId, [
      { key: 'core', title: 'Core module', description: 'Write lib/core.js' },
      { key: 'util', title: 'Utilities', description: 'Write lib/util.js' },
      { key: 'api', title: 'API handlers', description: 'Write lib/api.js', dependsOn: ['core', 'util'] },
      { key: 'ui', title: 'Settings page', description: 'A page component', dependsOn: ['api'] },
      { key: 'widget', title: 'Counter widget', description: 'A widget', dependsOn: ['core'] },
      { key: 'e2e', title: 'End-to-end tests', description: 'Tests for the whole flow', dependsOn: ['ui', 'widget'] },
      { key: 'docs', title: 'Docs example', description: 'Write lib/docs.js' },
    ]);
    const run = await t.runtime.startRun(projectId);
    const end = await t.runEnd(projectId, run.id);

    expect(end.type).toBe('run.completed');
    expect(violations).toEqual([]);
    expect(t.model.maxInFlight).toBeLessThanOrEqual(2);
    expect(t.model.maxInFlight).toBe(2);
    const tasks = await t.runtime.listTasks(projectId);
    expect(tasks.map((x) => [x.key, x.status, x.attempts])).toEqual([
      ['core', 'completed', 1],
      ['util', 'completed', 1],
      ['api', 'completed', 2],
      ['ui', 'completed', 1],
      ['widget', 'completed', 1],
      ['e2e', 'completed', 1],
      ['docs', 'completed', 1],
    ]);
    expect(tasks.find((x) => x.key === 'e2e')!.agentId).toMatch(/^test-\d+$/);
    expect(tasks.find((x) => x.key === 'ui')!.agentId).toMatch(/^frontend-\d+$/);

    // The correction request carried the failing test output.
    const correction = t.model.requests.find((r) => r.taskKey === 'api' && r.attempt === 2)!;
    expect(correction.text).toContain('Your previous attempt failed');
    expect(correction.text).toMatch(/AssertionError|Expected values to be strictly equal/);
    expect(correction.text).toContain('lib/api.js');

    const events = await t.events(projectId);
    const apiCorrections = events.filter((e) => e.type === 'correction.attempt').map((e) => e.data);
    expect(apiCorrections).toEqual([
      { attempt: 1, maxAttempts: 2, status: 'started', errorSummary: expect.any(String) as string },
      { attempt: 1, maxAttempts: 2, status: 'succeeded' },
    ]);
    const seqs = events.map((e) => e.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);

    // One commit per task on the workspace branch, and the merged workspace passes its tests.
    const project = await t.runtime.getProject(projectId);
    expect(project.status).toBe('completed');
    expect(project.progress).toMatchObject({ total: 7, completed: 7, percent: 100 });
    expect(project.usage.inputTokens).toBe(8 * 1200);
    expect(project.usage.costUsd).toBeGreaterThan(0);
    expect(git(project.workspace, 'rev-list', '--count', 'HEAD')).toBe('8');
    expect(git(project.workspace, 'status', '--porcelain')).toBe('');
    execFileSync(process.execPath, ['--test'], { cwd: project.workspace, stdio: 'ignore' });
  });

  it('a task that never passes is blocked after 1 + maxCorrectionAttempts generations and blocks its dependents; a retry with guidance completes them in the same run', async () => {
    t = await startTestRuntime((req) => {
      if (req.taskKey === 'base' && !req.text.includes('return "fixed"')) return moduleWithTest('base', 'broken', 'fixed');
      return moduleWithTest(req.taskKey!, req.taskKey === 'base' ? 'fixed' : 'ok');
    });
    const projectId = await t.project({ name: 'stuck', testCommand: ['node', '--test'], config: { maxCorrectionAttempts: 2 } });
    await t.addTasks(projectId, [
      { key: 'base', title: 'Base module', description: 'Write lib/base.js' },
      { key: 'mid', title: 'Middle module', description: 'Uses base', dependsOn: ['base'] },
      { key: 'top', title: 'Top module', description: 'Uses mid', dependsOn: ['mid'] },
      { key: 'free', title: 'Independent module', description: 'No dependencies' },
    ]);
    const run = await t.runtime.startRun(projectId);
    const blocked = await t.runEnd(projectId, run.id);
    expect(blocked.type).toBe('run.blocked');
    expect(blocked.data).toMatchObject({ status: 'blocked', summary: expect.stringContaining('1 of 4') as string });

    const byKey = Object.fromEntries((await t.runtime.listTasks(projectId)).map((x) => [x.key, x]));
    expect(byKey.base).toMatchObject({ status: 'blocked', blockedReason: 'attempts_exhausted', attempts: 3 });
    expect(byKey.mid).toMatchObject({ status: 'blocked', blockedReason: 'dependency_failed' });
    expect(byKey.top).toMatchObject({ status: 'blocked', blockedReason: 'dependency_failed' });
    expect(byKey.free!.status).toBe('completed');
    expect(t.model.requests.filter((r) => r.taskKey === 'base')).toHaveLength(3);
    const detail = await t.runtime.getTask(projectId, 'base');
    expect(detail.testResults.map((r) => r.status)).toEqual(['failed', 'failed', 'failed']);
    expect(detail.corrections.map((c) => [c.attempt, c.status])).toEqual([
      [1, 'failed'],
      [2, 'failed'],
    ]);
    expect((await t.runtime.getRun(projectId, run.id)).status).toBe('blocked');

    const retried = await t.runtime.retryTask(projectId, 'base', 'Make value() return "fixed": return "fixed"');
    expect(retried.key).toBe('base');
    await t.waitForEvent(projectId, (e) => e.type === 'run.resumed' && e.runId === run.id);
    const done = await t.waitForEvent(projectId, (e) => e.type === 'run.completed');
    expect(done.runId).toBe(run.id);
    const after = await t.runtime.listTasks(projectId);
    expect(after.every((x) => x.status === 'completed')).toBe(true);
    expect(after.find((x) => x.key === 'base')).toMatchObject({ attempts: 1, guidance: 'Make value() return "fixed": return "fixed"' });
    const retryRequest = t.model.requests.filter((r) => r.taskKey === 'base').at(-1)!;
    expect(retryRequest.text).toContain('## Guidance from a person');
    expect((await t.runtime.listRuns(projectId)).map((r) => r.status)).toEqual(['completed']);
  });

  it('cancelling a task during a hanging model call closes the request within a second, and the task stays cancelled', async () => {
    t = await startTestRuntime((req) => (req.taskKey === 'slow' ? { kind: 'hang' } : moduleWithTest(req.taskKey!, 'ok')));
    const projectId = await t.project({ name: 'cancel', testCommand: 'node --test' });
    await t.addTasks(projectId, [
      { key: 'slow', title: 'Slow module', description: 'The model never answers' },
      { key: 'after', title: 'Depends on slow', description: 'x', dependsOn: ['slow'] },
    ]);
    const run = await t.runtime.startRun(projectId);
    const request = await t.model.waitForRequest((r) => r.taskKey === 'slow');
    const cancelledAt = Date.now();
    const task = await t.runtime.cancelTask(projectId, 'slow');
    expect(task.status).toBe('cancelled');
    await t.model.waitForAbort(request);
    expect(request.abortedAt! - cancelledAt).toBeLessThan(1000);

    const end = await t.runEnd(projectId, run.id);
    expect(end.type).toBe('run.blocked');
    const slow = await t.runtime.getTask(projectId, 'slow');
    expect(slow.status).toBe('cancelled');
    expect((await t.runtime.getTask(projectId, 'after')).blockedReason).toBe('dependency_failed');
    const changes = (await t.events(projectId)).filter((e) => e.type === 'task.status_changed' && e.taskId === slow.id).map((e) => e.data);
    expect(changes).toEqual([
      { key: 'slow', from: 'pending', to: 'in_progress' },
      { key: 'slow', from: 'in_progress', to: 'cancelled' },
    ]);
    await expect(t.runtime.cancelTask(projectId, 'slow')).rejects.toMatchObject({ status: 409 });
  });

  it('cancelling the run during a hanging model call aborts it and cancels every unfinished task', async () => {
    t = await startTestRuntime((req) => (req.taskKey === 'slow' ? { kind: 'hang' } : moduleWithTest(req.taskKey!, 'ok')));
    const projectId = await t.project({ name: 'cancel-run', testCommand: 'node --test', config: { maxConcurrency: 1 } });
    await t.addTasks(projectId, [
      { key: 'slow', title: 'Slow', description: 'x', priority: 0 },
      { key: 'later', title: 'Later', description: 'x' },
    ]);
    const run = await t.runtime.startRun(projectId);
    const request = await t.model.waitForRequest((r) => r.taskKey === 'slow');
    const reply = await t.runtime.cancelRun(projectId);
    expect(reply.status).toBe('cancelled');
    await t.model.waitForAbort(request);
    const end = await t.runEnd(projectId, run.id);
    expect(end.type).toBe('run.cancelled');
    expect((await t.runtime.listTasks(projectId)).map((x) => x.status)).toEqual(['cancelled', 'cancelled']);
    await expect(t.runtime.pauseRun(projectId)).rejects.toMatchObject({ status: 409 });
    expect(t.model.requests.filter((r) => r.taskKey === 'later')).toHaveLength(0);
  });

  it('plans from a goal with create_tasks, then runs the plan', async () => {
    t = await startTestRuntime((req) => {
      if (req.tool === 'create_tasks') {
        return {
          kind: 'tool',
          name: 'create_tasks',
          input: {
            tasks: [
              { key: 'lib', title: 'Library', description: 'Write lib/lib.js', agentType: 'backend', dependsOn: [] },
              { key: 'checks', title: 'Tests for the library', description: 'Test lib/lib.js', agentType: 'test', dependsOn: ['lib'] },
            ],
          },
        };
      }
      return moduleWithTest(req.taskKey!, 'ok');
    });
    const projectId = await t.project({ name: 'goal', testCommand: 'node --test', goal: 'A tiny tested library' });
    const run = await t.runtime.startRun(projectId);
    expect(run.status).toBe('planning');
    expect((await t.runEnd(projectId, run.id)).type).toBe('run.completed');
    const plan = t.model.requests[0]!;
    expect(plan.tool).toBe('create_tasks');
    expect(plan.text).toContain('A tiny tested library');
    const events = await t.events(projectId);
    expect(events.find((e) => e.type === 'run.planned')?.data).toEqual({ tasks: ['lib', 'checks'] });
    expect((await t.runtime.listTasks(projectId)).map((x) => [x.key, x.agentType, x.status])).toEqual([
      ['lib', 'backend', 'completed'],
      ['checks', 'test', 'completed'],
    ]);
    expect((await t.runtime.usage(projectId)).byAgent.map((u) => u.agentId)).toEqual(['backend-1', 'lead', 'test-1']);
  });

  it('a plan with a cycle fails the run with the reason in its summary', async () => {
    t = await startTestRuntime(() => ({
      kind: 'tool',
      name: 'create_tasks',
      input: {
        tasks: [
          { key: 'a', title: 'A', description: '', agentType: 'backend', dependsOn: ['b'] },
          { key: 'b', title: 'B', description: '', agentType: 'backend', dependsOn: ['a'] },
        ],
      },
    }));
    const projectId = await t.project({ name: 'badplan', testCommand: 'node --test', goal: 'Go in circles' });
    const run = await t.runtime.startRun(projectId);
    const end = await t.runEnd(projectId, run.id);
    expect(end.type).toBe('run.failed');
    expect((end.data as { summary: string }).summary).toMatch(/^planning failed: dependency cycle: (a → b → a|b → a → b)$/);
    expect(await t.runtime.getRun(projectId, run.id)).toMatchObject({ status: 'failed', summary: (end.data as { summary: string }).summary });
    expect(await t.runtime.listTasks(projectId)).toEqual([]);
    expect(t.model.requests).toHaveLength(1);
  });
});
