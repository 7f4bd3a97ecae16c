/**
 * A project's event log as the page keeps it: read whole from `GET …/events/log` (pages of 1000,
 * following `next`), then grown by the live stream. The two overlap (the stream replays the log
 * when it opens), so events are merged by seq: each kept once, in seq order. Pure (the page is
 * fetched by the caller), so it is tested in Node.
 */
import type { LogEvent } from './replay.ts';
import type { TroupeEvent } from './types.ts';

/** The most events one page of the log may hold (the route's own limit). */
export const LOG_PAGE = 1000;

export type LogPage = { events: TroupeEvent[]; next: number };

export function toLogEvent(e: TroupeEvent): LogEvent {
  return { seq: e.seq, type: e.type, runId: e.runId ?? null, taskId: e.taskId ?? null, agentId: e.agentId ?? null, at: e.at, data: e.data ?? {} };
}

/** Every event of the log so far: `page(since)` reads the up to LOG_PAGE events after `since`. */
export async function readLog(page: (since: number) => Promise<LogPage>): Promise<LogEvent[]> {
  const all: LogEvent[] = [];
  let since = 0;
  for (;;) {
    const { events, next } = await page(since);
    all.push(...events.map(toLogEvent));
    if (events.length < LOG_PAGE || next <= since) return all;
    since = next;
  }
}

/** `list` with `more` merged in by seq (a new array; `list` when nothing was new). */
export function mergeEvents(list: readonly LogEvent[], more: readonly LogEvent[]): readonly LogEvent[] {
  const last = list.at(-1)?.seq ?? 0;
  // The common case: the stream's next event, after everything held.
  if (more.every((e, i) => e.seq > (i === 0 ? last : more[i - 1]!.seq))) return more.length ? [...list, ...more] : list;
  const bySeq = new Map(list.map((e) => [e.seq, e]));
  let added = false;
  for (const e of more) {
    if (bySeq.has(e.seq)) continue;
    bySeq.set(e.seq, e);
    added = true;
  }
  return added ? [...bySeq.values()].sort((a, b) => a.seq - b.seq) : list;
}
