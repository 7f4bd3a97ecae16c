/** What the codes of the API mean, said in words, and the small formatters the views share. */
import type { Review, Task } from './types.ts';

const BLOCKED: Record<string, string> = {
  attempts_exhausted: 'every correction attempt failed the tests',
  budget_exhausted: 'the budget is spent (raise config.budgetUsd to go on)',
  dependency_failed: 'a task it depends on did not complete',
  merge_conflict: 'its change conflicts with work already merged',
  review_rejected: 'its change was rejected in review',
};

const REVIEW: Record<Review['reason'], string> = {
  protected_paths: 'it changes protected files',
  tests_deleted: 'it deletes existing tests',
  always: 'this project reviews every change',
};

export function blockedWords(reason: string | null): string | null {
  return reason ? (BLOCKED[reason] ?? reason.replace(/_/g, ' ')) : null;
}

export function reviewWords(review: Review): string {
  const files = review.files.length ? `: ${review.files.join(', ')}` : '';
  return `waiting for review because ${REVIEW[review.reason] ?? review.reason}${files}`;
}

/** One line saying why a task is where it is, or null when its status says it all. */
export function taskReason(t: Task): string | null {
  if (t.status === 'review' && t.review) return reviewWords(t.review);
  const parts = [blockedWords(t.blockedReason), t.reason].filter((p): p is string => !!p);
  return parts.length ? parts.join(' — ') : null;
}

export function statusWords(s: string): string {
  return s.replace(/_/g, ' ');
}

export function usd(v: number | null | undefined): string {
  if (v === null || v === undefined) return 'unpriced';
  return `$${v < 1 ? v.toFixed(4) : v.toFixed(2)}`;
}

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '—';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return new Date(iso).toLocaleString();
}
