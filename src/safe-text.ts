/**
 * Text from outside (model answers, test output, error messages) that is about to be stored
 * or shown. Postgres refuses U+0000 in `text` and `jsonb`, and a lone UTF-16 surrogate in
 * `jsonb` (in `text` the driver quietly turns it into U+FFFD); a NUL also cuts strings short in
 * C code such as git. So such characters are either kept losslessly by an encoding (model
 * answers, see `runtime/records.ts`) or made visible here before they are stored or quoted.
 */

/** A lone surrogate: with the `u` flag a well-formed pair is one code point and does not match. */
const LONE_SURROGATE = /[\ud800-\udfff]/u;
const LONE_SURROGATES = /[\ud800-\udfff]/gu;

/** U+2400 SYMBOL FOR NULL: a NUL you can see. */
export const VISIBLE_NUL = '\u2400';

/** What in `text` cannot be stored as is, and where (UTF-16 index), or null. */
export function unstorableIn(text: string): { kind: 'nul' | 'surrogate'; index: number } | null {
  const nul = text.indexOf('\0');
  const surrogate = text.search(LONE_SURROGATE);
  if (nul < 0 && surrogate < 0) return null;
  if (surrogate < 0 || (nul >= 0 && nul < surrogate)) return { kind: 'nul', index: nul };
  return { kind: 'surrogate', index: surrogate };
}

/** `text` with every NUL shown as U+2400 and every lone surrogate as U+FFFD: safe for Postgres, git and prompts. */
export function storableText(text: string): string {
  if (unstorableIn(text) === null) return text;
  return text.replaceAll('\0', VISIBLE_NUL).replace(LONE_SURROGATES, '\ufffd');
}

/** `storableText`, at most `max` characters (an ellipsis marks a cut). */
export function boundedText(text: string, max: number): string {
  const safe = storableText(text);
  if (safe.length <= max) return safe;
  // Never cut a surrogate pair in two: half of one is just what this module removes.
  const cut = safe.slice(0, Math.max(0, max - 1)).replace(/[\ud800-\udbff]$/, '');
  return `${cut}…`;
}

/** `boundedText` on one line. */
export function shortText(text: string, max: number): string {
  return boundedText(text.replace(/\s+/g, ' ').trim(), max);
}

/** Whether any string inside a JSON-like value (keys included) cannot be stored as is. Iterative. */
export function hasUnstorableStrings(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') {
      if (unstorableIn(v) !== null) return true;
    } else if (Array.isArray(v)) {
      stack.push(...(v as unknown[]));
    } else if (typeof v === 'object' && v !== null) {
      for (const [k, inner] of Object.entries(v)) {
        if (unstorableIn(k) !== null) return true;
        stack.push(inner);
      }
    }
  }
  return false;
}

/**
 * `value` with `storableText` applied to every string in it (keys included): the same value
 * when nothing needs it. For what is stored as JSON but not kept losslessly (event data).
 */
export function storableValue<T>(value: T): T {
  if (!hasUnstorableStrings(value)) return value;
  const copy = (v: unknown): unknown => {
    if (typeof v === 'string') return storableText(v);
    if (Array.isArray(v)) return v.map(copy);
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, inner]) => [storableText(k), copy(inner)]));
    return v;
  };
  return copy(value) as T;
}
