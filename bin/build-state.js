// Whether the compiled CLI in dist/src (see tsconfig.build.json) is at least as new as every file
// in src/. `node bin/build-src.js` writes the stamp when a build succeeds, dated to the moment the
// build *started*: a source file saved during a build counts as newer, so it is never missed.
// Checking ~100 files' mtimes takes about a millisecond; comparing contents would take longer than
// the start it is meant to save.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { URL, fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const SRC = path.join(ROOT, 'src');
export const STAMP = path.join(ROOT, 'dist', 'src', '.build-stamp');

/** The stamp's time in ms, or null when there is no complete build. */
function stampMs() {
  try {
    return statSync(STAMP).mtimeMs;
  } catch {
    return null;
  }
}

/**
 * True when dist/src was built from the sources as they are now: no file or folder under src/
 * changed (a folder's mtime changes when a file in it is added, removed or renamed) since the
 * last successful build started.
 */
export function buildIsFresh() {
  const built = stampMs();
  if (built === null) return false;
  // A copy without the sources (the compiled tree alone) has nothing newer to find.
  if (!existsSync(SRC)) return true;
  const pending = [SRC];
  while (pending.length > 0) {
    const dir = pending.pop();
    if (statSync(dir).mtimeMs > built) return false;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) pending.push(full);
      else if (statSync(full).mtimeMs > built) return false;
    }
  }
  return true;
}
