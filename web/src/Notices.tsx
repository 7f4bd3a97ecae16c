/**
 * What needs a person, said in the page and, when allowed, as a desktop notification: a task
 * waiting for review (`task.review_requested`) and a blocked run (`run.blocked`). Only events that
 * happen while the page is open notify; the log read when it opened does not.
 */
import { useState } from 'preact/hooks';
import type { LogEvent } from './replay.ts';
import { reviewWords } from './words.ts';
import type { Review } from './types.ts';

export interface Notice {
  seq: number;
  kind: 'review' | 'blocked';
  text: string;
}

/** The notice an event calls for, if any. */
export function noticeOf(e: LogEvent): Notice | null {
  const d = e.data;
  if (e.type === 'task.review_requested') {
    const review = { reason: d.reason, files: Array.isArray(d.files) ? d.files.map(String) : [], attempt: 0, verified: false } as Review;
    return { seq: e.seq, kind: 'review', text: `Task ${String(d.key)} is ${reviewWords(review)}.` };
  }
  if (e.type === 'run.blocked') return { seq: e.seq, kind: 'blocked', text: `The run is blocked${typeof d.summary === 'string' ? `: ${d.summary}` : '.'}` };
  return null;
}

/** Also a desktop notification, when this origin may show them. */
export function notifyDesktop(n: Notice): void {
  if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
  new Notification(n.kind === 'review' ? 'Troupe: review requested' : 'Troupe: run blocked', { body: n.text, tag: `troupe-${n.seq}` });
}

export function Notices({ notices, onDismiss }: { notices: Notice[]; onDismiss: (seq: number) => void }) {
  const [permission, setPermission] = useState(() => (typeof Notification === 'undefined' ? 'denied' : Notification.permission));
  return (
    <div class="notices" role="status" aria-live="polite">
      {notices.map((n) => (
        <div key={n.seq} class={`notice notice-${n.kind}`} data-kind={n.kind}>
          <span>{n.text}</span>
          <button type="button" class="link" aria-label="dismiss" onClick={() => onDismiss(n.seq)}>
            ×
          </button>
        </div>
      ))}
      {permission === 'default' && (
        <button type="button" class="secondary notify-ask" onClick={() => void Notification.requestPermission().then(setPermission)}>
          Desktop notifications for reviews and blocks
        </button>
      )}
    </div>
  );
}
