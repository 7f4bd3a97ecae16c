/**
 * The terminal view of `troupe run` fed a run's events: what a person sees on a TTY (each task's
 * phase while it runs, why it ended) and in plain lines (counts, never a made-up "0 passed").
 */
import { describe, expect, it } from 'vitest';
import { stripAnsi } from '../../src/actors/testing/parse-summary.ts';
import { ProgressView, testText } from '../../src/cli/progress.ts';
import type { EventDataMap, TroupeEvent } from '../../src/events/types.ts';

let seq = 0;
function ev<T extends keyof EventDataMap>(type: T, data: EventDataMap[T], taskId: string | null = 'tsk_a'): TroupeEvent {
  return { seq: ++seq, type, projectId: 'prj', runId: 'run', taskId, agentId: null, at: new Date(0).toISOString(), data } as unknown as TroupeEvent;
}

/** A terminal: the last frame drawn, without the cursor moves. */
function terminal() {
  let frames = '';
  return {
    out: { columns: 120, write: (s: string) => ((frames += s), true) },
    lastFrame: () => (frames.split('\x1b[J').filter((f) => f.trim() !== '').at(-1) ?? '').replace(/\r/g, '').split('\n').map(stripAnsi).join('\n'),
  };
}

const result = (over: Partial<EventDataMap['test.result']>): EventDataMap['test.result'] =>
  ({ attempt: 1, status: 'failed', passed: 2, failed: 1, errors: 0, skipped: 0, total: 3, durationMs: 10, verified: false, sandbox: 'bwrap', phase: 'task', failures: [{ name: 'adds negatives', message: 'Expected 3, received -1' }], ...over });

describe('troupe run progress', () => {
  it('on a TTY shows each task phase while it runs and, once it ended, why', () => {
    const tty = terminal();
    const view = new ProgressView('tty', tty.out);
    view.onEvent(ev('task.created', { key: 'add', title: 'add', agentType: 'backend', dependsOn: [] } as never));
    view.onEvent(ev('task.assigned', { key: 'add', agentId: 'backend-1' }));
    view.onEvent(ev('task.status_changed', { key: 'add', from: 'pending', to: 'in_progress' }));
    view.onEvent(ev('agent.state_changed', { agentId: 'backend-1', state: 'testing' }));
    view.onEvent(ev('test.result', result({})));
    view.onEvent(ev('agent.state_changed', { agentId: 'backend-1', state: 'correcting' }));
    view.onEvent(ev('correction.attempt', { attempt: 1, maxAttempts: 3, status: 'started' } as never));
    view.finish();
    const running = tty.lastFrame();
    expect(running).toMatch(/add\s+in_progress\s+backend-1\s+correcting \(attempt 2\)/);
    expect(running).toContain('tests failed: 1 of 3 failed — `adds negatives`: Expected 3, received -1');

    view.onEvent(ev('task.status_changed', { key: 'add', from: 'in_progress', to: 'blocked', blockedReason: 'attempts_exhausted', reason: '2 attempt(s) failed; last: adds negatives' }));
    view.finish();
    const ended = tty.lastFrame();
    expect(ended).toMatch(/add\s+blocked\s+backend-1\s+2 attempt\(s\)/);
    expect(ended).toContain('↳ 2 attempt(s) failed; last: adds negatives');
    expect(ended).not.toContain('correcting');
  });

  it('words a test result from what the runner said, never from counts it did not give', () => {
    expect(testText(result({}))).toBe('tests failed: 1 of 3 failed — `adds negatives`: Expected 3, received -1');
    expect(testText(result({ status: 'passed', passed: 3, failed: 0, total: 3, failures: [] }))).toBe('tests passed: 3 of 3 passed');
    const unknown = result({ status: 'failed', passed: null, failed: null, errors: null, skipped: null, total: null, failures: [], exitCode: 1 } as never);
    expect(testText(unknown)).toBe('tests failed (exit code 1; counts not understood)');
    expect(testText(result({ status: 'passed', passed: null, failed: null, errors: null, skipped: null, total: null, failures: [] }))).toBe('tests passed');
    expect(testText(result({ phase: 'baseline', attempt: 0, failed: 1, failures: [{ name: 'old is broken', message: null }] }))).toBe(
      'baseline: 1 test(s) already failing before any change: old is broken',
    );
  });
});
