/**
 * A project's event log as the page keeps it: read whole from `GET …/events/log` (pages of 1000,
 * following `next`), then grown by the live stream. The two overlap (the stream replays the log
 * when it opens), so events are merged by seq: each kept once, in seq order.
 */
import { getJson, projectPath } from './api.ts';
import type { LogEvent } from './replay.ts';
import type { TroupeEvent } from './types.ts';

const PAGE = 1000;

export function toLogEvent(e: TroupeEvent): LogEvent {
  return { seq: e.seq, type: e.type, runId: e.runId ?? null, taskId: e.taskId ?? null, agentId: e.agentId ?? null, at: e.at, data: e.data ?? {} };
}

/** Every event of the project so far. */
export async function readLog(projectId: string): Promise<LogEvent[]> {
  const all: LogEvent[] = [];
  let since = 0;
  for (;;) {
    const page = await getJson<{ events: TroupeEvent[]; next: number }>(projectPath(projectId, `/events/log?since=${since}&limit=${PAGE}`));
    all.push(...page.events.map(toLogEvent));
    if (page.events.length < PAGE || page.next <= since) return all;
    since = page.next;
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
