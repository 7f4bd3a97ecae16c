/**
 * The referee is not the player's (README "Security model"). The files that decide how a
 * project's tests run — `package.json` and its test script, lockfiles, test-runner configs — and
 * the existing tests themselves are what a model would change to make a failing run "pass". A
 * change to a protected file, or the deletion of an existing test file, never completes a task on
 * its own: the task waits for a person's review (`review: "protected"`), or such an answer is
 * refused outright (`review: "never"`). `review: "always"` sends every task to review.
 *
 * Not caught: a test file edited to assert less. Only its deletion is; the diff a reviewer reads
 * (and `review: "always"`) is the answer to that.
 */
import path from 'node:path';
import picomatch from 'picomatch';
import type { ReviewPolicy } from '../../machines/types.ts';
import type { ReviewReason } from '../../events/types.ts';

/** A file an answer (or a task's attempts together) changed. */
export interface ChangedFile {
  path: string;
  /** The file existed before the change. */
  existed: boolean;
  /** The file exists after it (false: deleted). */
  exists: boolean;
}

/**
 * Globs as `.gitignore` reads them: a pattern without a slash matches the file's name in any
 * directory (`package.json` also protects `packages/a/package.json`); dot files match.
 */
export function protectedMatcher(globs: readonly string[]): (file: string) => boolean {
  // picomatch's own `basename` option also rewrites patterns that have a slash: split them here.
  const named = globs.filter((g) => !g.includes('/'));
  const pathed = globs.filter((g) => g.includes('/'));
  const byName = named.length > 0 ? picomatch(named, { dot: true }) : () => false;
  const byPath = pathed.length > 0 ? picomatch(pathed, { dot: true }) : () => false;
  return (file) => byPath(file) || byName(path.posix.basename(file));
}

const TEST_NAME = /(\.|_|-)(test|spec)s?\.[^/.]+$|^test_[^/]*\.py$|_test\.(py|go|rb|exs?)$/i;
const TEST_DIR = /(^|\/)(tests?|__tests__|spec|specs)\//i;

/** Does `file` look like a test file? (Names and folders the common runners look for.) */
export function isTestFile(file: string): boolean {
  return TEST_NAME.test(path.posix.basename(file)) || TEST_DIR.test(file);
}

export interface ReviewNeed {
  reason: ReviewReason;
  files: string[];
}

/** Why the task's change needs a person, or null when it may land on its own. */
export function reviewNeeded(changes: readonly ChangedFile[], policy: ReviewPolicy, globs: readonly string[]): ReviewNeed | null {
  const isProtected = protectedMatcher(globs);
  const touched = changes.filter((c) => isProtected(c.path)).map((c) => c.path);
  if (touched.length > 0 && policy !== 'never') return { reason: 'protected_paths', files: touched };
  const deleted = changes.filter((c) => c.existed && !c.exists && isTestFile(c.path)).map((c) => c.path);
  if (deleted.length > 0 && policy !== 'never') return { reason: 'tests_deleted', files: deleted };
  if (policy === 'always') return { reason: 'always', files: changes.map((c) => c.path) };
  return null;
}

/** Under `review: "never"`: why an answer is refused (it would have needed review), or null. */
export function refusedWithoutReview(changes: readonly ChangedFile[], globs: readonly string[]): { reason: string; path: string } | null {
  const isProtected = protectedMatcher(globs);
  const touched = changes.find((c) => isProtected(c.path));
  if (touched) return { reason: 'the file is protected (it decides how the tests run) and this project never reviews: the answer may not change it', path: touched.path };
  const deleted = changes.find((c) => c.existed && !c.exists && isTestFile(c.path));
  if (deleted) return { reason: 'deleting an existing test file needs review, and this project never reviews', path: deleted.path };
  return null;
}
