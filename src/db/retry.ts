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

/**
 * Runs `fn` again while it fails with a transient database error, with capped exponential
 * backoff. Callers make `fn` idempotent (guarded updates), so a commit whose acknowledgement
 * was lost is harmless to repeat.
 */
export async function withDbRetry<T>(fn: () => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const deadline = Date.now() + (opts.maxMs ?? 60_000);
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
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
