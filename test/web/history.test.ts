/**
 * The page's copy of a project's event log: the log read over REST and the stream (which replays
 * it when it opens, and resumes after a reconnect) overlap, and the merge keeps every event once,
 * in seq order, whatever order the two arrive in; a log longer than a page is read page by page.
 */
import { describe, expect, it } from 'vitest';
import { LOG_PAGE, mergeEvents, readLog, toLogEvent } from '../../web/src/history.ts';
import type { LogEvent } from '../../web/src/replay.ts';

const ev = (seq: number): LogEvent => ({ seq, type: 'progress', runId: null, taskId: null, agentId: null, at: '2026-01-01T00:00:00.000Z', data: {} });
const seqs = (list: readonly LogEvent[]) => list.map((e) => e.seq);

describe('the event log on the page', () => {
  it('appends the stream’s next events, and keeps the same list when nothing is new', () => {
    const list = [ev(1), ev(2)];
    expect(seqs(mergeEvents(list, [ev(5), ev(9)]))).toEqual([1, 2, 5, 9]);
    expect(mergeEvents(list, [])).toBe(list);
    expect(mergeEvents(list, [ev(2)])).toBe(list);
  });

  it('merges a log that arrives after the stream replayed part of it: each event once, in seq order', () => {
    const streamed = [ev(3), ev(4), ev(7)];
    const log = [ev(1), ev(3), ev(4), ev(5)];
    expect(seqs(mergeEvents(log, streamed))).toEqual([1, 3, 4, 5, 7]);
    expect(seqs(mergeEvents(streamed, log))).toEqual([1, 3, 4, 5, 7]);
  });

  it('reads the stream’s envelope with its optional fields as the log’s nulls', () => {
    expect(toLogEvent({ seq: 4, type: 'run.started', projectId: 'p', at: 'x', data: { status: 'running' } })).toEqual({ seq: 4, type: 'run.started', runId: null, taskId: null, agentId: null, at: 'x', data: { status: 'running' } });
  });

  it('reads a log longer than a page by following `next`, each event once', async () => {
    const log = Array.from({ length: LOG_PAGE * 2 + 5 }, (_, i) => ({ seq: 10 + i * 2, type: 'progress', projectId: 'p', at: 'x', data: {} }));
    const asked: number[] = [];
    const events = await readLog((since) => {
      asked.push(since);
      const page = log.filter((e) => e.seq > since).slice(0, LOG_PAGE);
      return Promise.resolve({ events: page, next: page.at(-1)?.seq ?? since });
    });
    expect(seqs(events)).toEqual(log.map((e) => e.seq));
    expect(asked).toEqual([0, log[LOG_PAGE - 1]!.seq, log[2 * LOG_PAGE - 1]!.seq]);
  });
});
