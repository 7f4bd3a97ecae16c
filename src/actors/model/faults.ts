import Anthropic, { APIError } from '@anthropic-ai/sdk';
import { Fault, coerceError } from '../../errors.ts';

/**
 * Turns an SDK error into a `Fault`. By the time one arrives the SDK has already retried
 * 429/5xx/529 and connection errors (`maxRetries`, with backoff): those become non-fatal
 * faults (a failed attempt). 400/401/403/404 and a missing key are fatal: retrying would
 * only burn budget. Aborts are rethrown untouched.
 */
export function modelFault(thrown: unknown): Error {
  if (thrown instanceof Anthropic.APIUserAbortError) return thrown;
  if (thrown instanceof Anthropic.APIConnectionTimeoutError) return new Fault('model call timed out', false, { cause: thrown });
  if (thrown instanceof Anthropic.APIConnectionError) return new Fault(`cannot reach the model API: ${thrown.message}`, false, { cause: thrown });
  if (thrown instanceof APIError) {
    const apiError = thrown as APIError<number | undefined, Headers | undefined, object | undefined>;
    const status = apiError.status ?? 0;
    const detail = apiMessage(apiError);
    if (status === 401) return new Fault(`the model API rejected the API key (401): ${detail}`, true, { cause: thrown });
    if (status === 403) return new Fault(`the model API refused the request (403): ${detail}`, true, { cause: thrown });
    if (status === 400 || status === 404 || status === 413 || status === 422) {
      return new Fault(`the model API rejected the request (${status}): ${detail}`, true, { cause: thrown });
    }
    return new Fault(`model API error ${status || ''} after retries: ${detail}`.replace('  ', ' '), false, { cause: thrown });
  }
  const e = coerceError(thrown);
  if (/Could not resolve authentication method/.test(e.message)) {
    return new Fault('no Anthropic credentials: set ANTHROPIC_API_KEY', true, { cause: e });
  }
  return new Fault(`model call failed: ${e.message}`, false, { cause: e });
}

function apiMessage(e: APIError<number | undefined, Headers | undefined, object | undefined>): string {
  const body = e.error as { error?: { message?: unknown } } | undefined;
  const message = body?.error?.message;
  const text = typeof message === 'string' ? message : e.message;
  return text.slice(0, 300);
}
