/**
 * What may leave the process of a persisted snapshot or an actor's context: no credentials,
 * no prompts or model answers in full, no big strings.
 */
const SECRET_KEY = /api[-_]?key|token|secret|password|authorization|credential/i;
const MAX_STRING = 2_000;
const MAX_DEPTH = 12;
const MAX_ITEMS = 500;

export function sanitize(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}… [${value.length - MAX_STRING} more characters]` : value;
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return '[too deep]';
  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ITEMS).map((v) => sanitize(v, depth + 1));
    if (value.length > MAX_ITEMS) items.push(`[${value.length - MAX_ITEMS} more items]`);
    return items;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEY.test(k) ? '[redacted]' : sanitize(v, depth + 1);
  }
  return out;
}
