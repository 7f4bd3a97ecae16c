/**
 * Purely lexical checks on a path the model proposed. No file system access: what the disk says
 * (symlinks, files in the way) is checked separately in `files.ts`.
 */

/** A relative path that passed the lexical checks: `/`-separated, no empty, `.` or `..` segments. */
export type CheckedPath = { ok: true; path: string; segments: string[] } | { ok: false; reason: string };

// Characters HFS+ ignores when comparing names: `.g\u200cit` is `.git` on a Mac (CVE-2014-9390).
const IGNORABLE = /[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]/g;

/**
 * True for any spelling of `.git` a file system might treat as the repository directory:
 * any case, HFS+ ignorable characters, NTFS trailing dots and spaces, and the 8.3 name `git~1`.
 */
export function isGitSegment(segment: string): boolean {
  const folded = segment.replace(IGNORABLE, '').toLowerCase().replace(/[. ]+$/, '');
  return folded === '.git' || folded === 'git~1';
}

/** Validates and normalises a proposed relative path. */
export function checkRelativePath(raw: unknown): CheckedPath {
  if (typeof raw !== 'string' || raw.length === 0) return { ok: false, reason: 'path is empty' };
  if (raw.includes('\0')) return { ok: false, reason: 'path contains a NUL byte' };
  // A backslash is a separator on Windows and a name character on POSIX; refusing it removes the
  // ambiguity instead of guessing which one the model meant.
  if (raw.includes('\\')) return { ok: false, reason: 'path contains a backslash' };
  if (raw.startsWith('/')) return { ok: false, reason: 'path is absolute' };
  if (/^[A-Za-z]:/.test(raw)) return { ok: false, reason: 'path is absolute (drive letter)' };
  const segments: string[] = [];
  for (const segment of raw.split('/')) {
    if (segment === '' || segment === '.') continue;
    // Refused even when it would stay inside the root (`a/../b`): a model that writes `..` is
    // either confused or probing, and the refusal names the path so the next attempt can fix it.
    if (segment === '..') return { ok: false, reason: 'path contains a ".." segment' };
    if (isGitSegment(segment)) return { ok: false, reason: 'path is inside .git' };
    segments.push(segment);
  }
  if (segments.length === 0) return { ok: false, reason: 'path names the workspace root' };
  return { ok: true, path: segments.join('/'), segments };
}
