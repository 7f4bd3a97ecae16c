/**
 * Errors by kind. Every `catch` goes through `coerceError`; faults that reach a user carry a
 * stable `code` and an HTTP status, mapped in one place by the HTTP layer.
 */

/** Always an `Error`; anything else thrown becomes the `cause` of one. */
export function coerceError(thrown: unknown): Error {
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

export type ErrorCode =
  | 'validation_failed'
  | 'unauthorized'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'unprocessable'
  | 'sandbox_unavailable'
  | 'not_implemented'
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
