import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { coerceError } from '../errors.ts';

/** Connection loss, server restart, serialization failure, deadlock: worth another try. */
const TRANSIENT_CODES = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '08000',
  '08001',
  '08003',
  '08006',
  '40001', // serialization_failure
  '40P01', // deadlock_detected
]);

export function isTransientDbError(thrown: unknown): boolean {
  for (let e: unknown = thrown, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export interface RetryOptions {
  /** Give up after this long (default 60 s). */
  maxMs?: number;
  signal?: AbortSignal;
  onRetry?: (error: Error, attempt: number) => void;
}

/** Which try of a retried unit of work is running (see `replayedWrite`). */
interface RetryScope {
  /** Names the unit across its tries. */
  readonly key: string;
  readonly attempt: number;
  /** Transactions begun so far in this try: the n-th of every try gets the same key. */
  writes: number;
}

const retryScope = new AsyncLocalStorage<RetryScope>();

/**
 * The key of the write about to begin inside `withDbRetry` (the same on every try of it), and
 * whether an earlier try may have committed it: a commit whose acknowledgement was lost looks
 * like a failure. The outbox stores the key with the write's first event and, on a later try,
 * looks for it before writing again. Undefined outside `withDbRetry`.
 */
export function replayedWrite(): { key: string; maybeCommitted: boolean } | undefined {
  const scope = retryScope.getStore();
  if (!scope) return undefined;
  return { key: `${scope.key}:${scope.writes++}`, maybeCommitted: scope.attempt > 1 };
}

/**
 * Runs `fn` again while it fails with a transient database error, with capped exponential
 * backoff. Callers make `fn` idempotent (guarded updates), so a commit whose acknowledgement
 * was lost is harmless to repeat; the events it appended are not appended twice (the outbox
 * recognises the write by its key, see `replayedWrite`).
 */
export async function withDbRetry<T>(fn: () => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const deadline = Date.now() + (opts.maxMs ?? 60_000);
  const key = randomUUID();
  for (let attempt = 1; ; attempt++) {
    try {
      return await retryScope.run({ key, attempt, writes: 0 }, fn);
    } catch (thrown) {
      const e = coerceError(thrown);
      if (!isTransientDbError(e) || Date.now() >= deadline || opts.signal?.aborted) throw e;
      opts.onRetry?.(e, attempt);
      const delay = Math.min(2000, 50 * 2 ** Math.min(attempt, 6));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        timer.unref();
      });
    }
  }
}
