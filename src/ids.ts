import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

/** An opaque, URL-safe id with a readable prefix: `prj_8f3k…`. */
export function newId(prefix: 'prj' | 'tsk' | 'run' | 'evt' | 'call' | 'att'): string {
  const bytes = randomBytes(16);
  let out = '';
  for (const b of bytes) out += ALPHABET[b & 31];
  return `${prefix}_${out}`;
}
