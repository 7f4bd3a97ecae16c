/**
 * The time-travel bar: a slider over the run's event log (the DAG and the statecharts show the
 * world right after the chosen event), a play button that steps through the events from there,
 * and "live", which follows the stream again. A finished run is travelled the same way.
 */
import { useEffect } from 'preact/hooks';
import type { LogEvent } from './replay.ts';

const STEP_MS = 250;

export function TimeTravel(props: { events: readonly LogEvent[]; at: number | null; playing: boolean; onAt: (seq: number | null) => void; onPlaying: (p: boolean) => void }) {
  const { events, at, playing, onAt, onPlaying } = props;
  const index = at === null ? events.length - 1 : Math.max(0, events.findIndex((e) => e.seq >= at));
  const current = events[index];

  useEffect(() => {
    if (!playing) return undefined;
    const timer = setTimeout(() => {
      const next = events[index + 1];
      if (next) onAt(next.seq);
      else onPlaying(false);
    }, STEP_MS);
    return () => clearTimeout(timer);
  }, [playing, index, events.length]);

  if (events.length === 0) return <div class="travel muted">No events yet.</div>;
  return (
    <div class="travel">
      <button
        type="button"
        onClick={() => {
          if (playing) return onPlaying(false);
          // From the start when at the end (or live), else from where the slider is.
          if (at === null || index >= events.length - 1) onAt(events[0]!.seq);
          onPlaying(true);
        }}
      >
        {playing ? 'Pause replay' : 'Play'}
      </button>
      <input
        type="range"
        aria-label="time travel"
        min={0}
        max={events.length - 1}
        value={index}
        onInput={(e) => {
          onPlaying(false);
          const ev = events[Number(e.currentTarget.value)];
          if (ev) onAt(ev.seq);
        }}
      />
      <button type="button" class={at === null ? 'live-on' : 'secondary'} disabled={at === null} onClick={() => { onPlaying(false); onAt(null); }}>
        Live
      </button>
      <span class="travel-at" data-testid="travel-at">
        {at === null ? 'live · ' : ''}event {index + 1} of {events.length}
        {current ? ` · #${current.seq} ${current.type} · ${new Date(current.at).toLocaleTimeString()}` : ''}
      </span>
    </div>
  );
}
