/**
 * `useEvents`: an EventSource on one of the SSE routes of the README's "Events", and whether it is live.
 * While the connection is down the browser reconnects by itself and sends `Last-Event-ID`, so no
 * event is lost or repeated; only when the browser gives up (the stream answered an error status)
 * do we tell the caller (`onRefused`) and open a new one, resuming with `?since=` the last seq we saw.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { EVENT_TYPES, type TroupeEvent } from './types.ts';

export type LiveState = 'connecting' | 'live' | 'reconnecting';

const REOPEN_MS = 3000;

export function useEvents(url: ((since?: number) => string) | null, onEvent: (e: TroupeEvent) => void, onRefused?: () => void): LiveState {
  const [state, setState] = useState<LiveState>('connecting');
  const handler = useRef(onEvent);
  handler.current = onEvent;
  const refused = useRef(onRefused);
  refused.current = onRefused;
  const href = url ? url() : null;

  useEffect(() => {
    if (!url) return undefined;
    let lastSeq: number | undefined;
    let source: EventSource | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const receive = (m: MessageEvent<string>) => {
      let e: TroupeEvent;
      try {
        e = JSON.parse(m.data) as TroupeEvent;
      } catch {
        return;
      }
      lastSeq = e.seq;
      handler.current(e);
    };
    const open = () => {
      const s = new EventSource(url(lastSeq));
      source = s;
      for (const type of EVENT_TYPES) s.addEventListener(type, receive);
      s.onopen = () => setState('live');
      s.onerror = () => {
        setState('reconnecting');
        if (s.readyState !== EventSource.CLOSED) return;
        // The stream answered an error status, which EventSource does not show: let the caller
        // ask the API (a 401 there brings the token prompt), and try again later.
        refused.current?.();
        timer = setTimeout(open, REOPEN_MS);
      };
    };
    open();
    return () => {
      clearTimeout(timer);
      source?.close();
    };
    // The URL (not the function's identity) decides when to reconnect.
  }, [href]);
  return state;
}

/**
 * Calls `fn` `ms` after the first of a burst of calls, once for the whole burst (a replayed log is
 * one burst); a call made after `fn` started schedules it again, so the last state is always read.
 */
export function useCoalesced(fn: () => void, ms: number): () => void {
  const f = useRef(fn);
  f.current = fn;
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(timer.current), []);
  return useRef(() => {
    if (timer.current !== undefined) return;
    timer.current = setTimeout(() => {
      timer.current = undefined;
      f.current();
    }, ms);
  }).current;
}
