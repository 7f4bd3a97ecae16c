/**
 * The run's event log, live: newest at the bottom (the list follows new events while scrolled to
 * the bottom), one checkbox per event type present to hide or show it, and the stream's state
 * ("reconnecting" while it is down; the browser resumes from `Last-Event-ID`, so nothing is lost).
 */
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { LiveState } from './live.ts';
import type { LogEvent } from './replay.ts';

/** The last events drawn at most (the whole log stays in memory for time travel). */
const SHOWN = 500;

export function EventsView({ events, live }: { events: readonly LogEvent[]; live: LiveState }) {
  const [hidden, setHidden] = useState<ReadonlySet<string>>(new Set());
  const types = [...new Set(events.map((e) => e.type))].sort();
  const shown = events.filter((e) => !hidden.has(e.type));
  const list = useRef<HTMLOListElement>(null);
  const atBottom = useRef(true);
  useLayoutEffect(() => {
    const el = list.current;
    if (el && atBottom.current) el.scrollTop = el.scrollHeight;
  }, [shown.length, shown.at(-1)?.seq]);
  useEffect(() => {
    const el = list.current;
    if (!el) return undefined;
    const on = () => (atBottom.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 8);
    el.addEventListener('scroll', on);
    return () => el.removeEventListener('scroll', on);
  }, []);

  const toggle = (type: string) =>
    setHidden((h) => {
      const next = new Set(h);
      if (!next.delete(type)) next.add(type);
      return next;
    });
  return (
    <div class="events">
      <div class="events-head">
        <span>
          {shown.length} of {events.length} events · stream <span class={`live live-${live}`}>{live}</span>
        </span>
        {types.length > 1 && (
          <span class="events-filter">
            <button type="button" class="link" onClick={() => setHidden(new Set())}>
              all
            </button>
            <button type="button" class="link" onClick={() => setHidden(new Set(types))}>
              none
            </button>
          </span>
        )}
      </div>
      <fieldset class="types">
        <legend>Event types</legend>
        {types.map((type) => (
          <label key={type}>
            <input type="checkbox" checked={!hidden.has(type)} onChange={() => toggle(type)} /> {type}
          </label>
        ))}
      </fieldset>
      <ol class="event-list" ref={list} aria-label="events">
        {shown.length > SHOWN && <li class="muted">… {shown.length - SHOWN} earlier events not drawn</li>}
        {shown.slice(-SHOWN).map((e) => (
          <li key={e.seq} class="event" data-type={e.type} data-seq={e.seq}>
            <span class="ev-seq">#{e.seq}</span> <span class="ev-time">{new Date(e.at).toLocaleTimeString()}</span> <span class="ev-type">{e.type}</span> <span class="ev-data">{summary(e)}</span>
          </li>
        ))}
      </ol>
    </div>
  );
}

/** One line of what an event says: its task and agent first, then the rest of its data. */
function summary(e: LogEvent): string {
  const { key, agentId, ...rest } = e.data;
  const head = [typeof key === 'string' ? key : null, typeof agentId === 'string' ? agentId : null].filter(Boolean).join(' · ');
  const body = Object.keys(rest).length ? JSON.stringify(rest) : '';
  const text = [head, body].filter(Boolean).join(' ');
  return text.length > 240 ? `${text.slice(0, 239)}…` : text;
}
