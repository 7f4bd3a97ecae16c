/**
 * The dashboard's only way to the service: same-origin `fetch` of the JSON API, with the bearer
 * token a person typed into this tab (sessionStorage, so it is asked for once per tab and gone with
 * it), and the EventSource URL (`?access_token=`, since EventSource cannot send headers). A 401
 * tells the app to ask for the token; every other failure comes back as an `ApiError` holding the
 * error envelope of the README's "HTTP API", field `details` included.
 */

const TOKEN_KEY = 'troupe.apiToken';

export interface FieldIssue {
  path: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: FieldIssue[] = [],
  ) {
    super(message);
  }
}

let unauthorized: (message: string) => void = () => undefined;

/** Called with the server's message whenever a request is refused for its token. */
export function onUnauthorized(fn: (message: string) => void): void {
  unauthorized = fn;
}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string): void {
  sessionStorage.setItem(TOKEN_KEY, value);
}

function headers(json: boolean): Record<string, string> {
  const h: Record<string, string> = { accept: json ? 'application/json' : '*/*' };
  const t = token();
  if (t) h.authorization = `Bearer ${t}`;
  return h;
}

async function send(method: string, path: string, body?: unknown): Promise<Response> {
  const init: RequestInit = { method, headers: headers(true) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  const res = await fetch(path, init);
  if (res.ok) return res;
  throw await failure(res);
}

async function failure(res: Response): Promise<ApiError> {
  let code = 'http_error';
  let message = `${res.status} ${res.statusText}`;
  let details: FieldIssue[] = [];
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string; details?: unknown } };
    if (body.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
      if (Array.isArray(body.error.details)) details = body.error.details.filter(isIssue);
    }
  } catch {
    // Not the JSON envelope (a proxy's page, say): the status line says enough.
  }
  if (res.status === 401) unauthorized(message);
  return new ApiError(res.status, code, message, details);
}

function isIssue(d: unknown): d is FieldIssue {
  return typeof d === 'object' && d !== null && typeof (d as FieldIssue).path === 'string' && typeof (d as FieldIssue).message === 'string';
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await send('GET', path)).json()) as T;
}

export async function postJson<T>(path: string, body?: unknown): Promise<T> {
  return (await (await send('POST', path, body)).json()) as T;
}

export async function getText(path: string): Promise<string> {
  return (await send('GET', path)).text();
}

/** The project's event stream; `since` resumes after that seq when a stream has to be reopened. */
export function eventsUrl(projectId: string, since?: number): string {
  const q = new URLSearchParams();
  if (since !== undefined) q.set('since', String(since));
  const t = token();
  if (t) q.set('access_token', t);
  const qs = q.toString();
  return `/api/projects/${encodeURIComponent(projectId)}/events${qs ? `?${qs}` : ''}`;
}

export const projectPath = (id: string, rest = '') => `/api/projects/${encodeURIComponent(id)}${rest}`;
export const taskPath = (id: string, key: string, rest = '') => projectPath(id, `/tasks/${encodeURIComponent(key)}${rest}`);

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
