/**
 * Errors by kind. Every `catch` goes through `coerceError`; faults that reach a user carry a
 * stable `code` and an HTTP status, mapped in one place by the HTTP layer.
 */
import { boundedText, shortText } from './safe-text.ts';

/**
 * Always an `Error`; anything else thrown becomes the `cause` of one. A failed database
 * statement becomes a short `StorageError` (see there), so neither a reason, an event nor a
 * log line ever carries SQL or the values it was given.
 */
export function coerceError(thrown: unknown): Error {
  if (isQueryError(thrown)) return new StorageError(thrown);
  if (thrown instanceof Error) return thrown;
  const message = typeof thrown === 'string' ? thrown : safeDescribe(thrown);
  return new Error(message, { cause: thrown });
}

function safeDescribe(value: unknown): string {
  try {
    return `non-error thrown: ${JSON.stringify(value)}`.slice(0, 500);
  } catch {
    return 'non-error thrown';
  }
}

/**
 * A failed database statement. Drizzle reports one as `Failed query: <the whole SQL>\nparams:
 * <every value>` — a model's answer, a test's output — and both it and the driver's error
 * (PGlite's has `query`, `params` and a `where` quoting the data) carry them as enumerable
 * fields, which a logger or a test reporter prints in full. This keeps the code and the
 * driver's own short message only; its cause is a clean copy of those, not the driver's error.
 */
export class StorageError extends Error {
  override name = 'StorageError';
  /** The SQLSTATE (`22P05`) or the driver's code (`CONNECTION_CLOSED`), when known. */
  readonly code: string | undefined;
  constructor(queryError: Error) {
    const driver = queryError.cause;
    const code = driverCode(driver);
    const said = shortText(driver instanceof Error && driver.message !== '' ? driver.message : 'the statement failed', 200);
    super(`database error${code === undefined ? '' : ` ${code}`}: ${said}`, { cause: Object.assign(new Error(said), { code }) });
    this.code = code;
  }
}

function isQueryError(e: unknown): e is Error {
  return e instanceof Error && e.message.startsWith('Failed query: ') && typeof (e as { query?: unknown }).query === 'string' && 'params' in e;
}

function driverCode(driver: unknown): string | undefined {
  const code = typeof driver === 'object' && driver !== null ? (driver as { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.length <= 40 ? code : undefined;
}

/** Longest reason (a task's, a correction's, a refusal's) stored or sent as an event. */
export const REASON_MAX = 2000;

/**
 * A reason as it may be stored and shown: a short human sentence, never a database statement
 * (a `Failed query: …` that got through as text is cut off there), no NUL, bounded.
 */
export function safeReason(text: string, max = REASON_MAX): string {
  const at = text.indexOf('Failed query: ');
  const kept = at < 0 ? text : `${text.slice(0, at)}a database statement failed`;
  return boundedText(kept, max);
}

export type ErrorCode =
  | 'validation_failed'
  | 'unauthorized'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'unprocessable'
  | 'sandbox_unavailable'
  | 'not_implemented'
  | 'owner_unavailable'
  | 'unavailable'
  | 'internal';

const STATUS: Record<ErrorCode, number> = {
  validation_failed: 400,
  unauthorized: 401,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unprocessable: 422,
  sandbox_unavailable: 422,
  not_implemented: 501,
  /** A control request carried to the run's owner found no answer in time. */
  owner_unavailable: 503,
  /** The database is briefly out of reach (restart, lost connection): try again shortly. */
  unavailable: 503,
  internal: 500,
};

/** A fault a caller can act on: bad input, a missing thing, a state that forbids the request. */
export class TroupeError extends Error {
  override name = 'TroupeError';
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.status = STATUS[code];
  }
}

export const notFound = (what: string) => new TroupeError('not_found', `${what} not found`);
export const conflict = (message: string, details?: unknown) => new TroupeError('conflict', message, details);
export const unprocessable = (message: string, details?: unknown) => new TroupeError('unprocessable', message, details);
export const invalid = (message: string, details?: unknown) => new TroupeError('validation_failed', message, details);

/**
 * A fault inside an effect. `fatal`: nothing a retry within the run could fix (the API key is
 * rejected, the request is invalid, the workspace is gone) — the task fails instead of using
 * up its correction attempts.
 */
export class Fault extends Error {
  override name = 'Fault';
  constructor(
    message: string,
    readonly fatal: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isAbortError(e: unknown): boolean {
  return e instanceof Error && (e.name === 'AbortError' || e.name === 'APIUserAbortError');
}
