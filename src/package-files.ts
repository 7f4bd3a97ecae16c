/**
 * The package's own files (`package.json`, `drizzle/`, `dist/web/`), found from the package root,
 * not from this module's depth: the same code runs from `src/` (the tests, tsx) and compiled from
 * `dist/src/` (`bin/troupe.js`), one folder deeper (README "Development").
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

/** The folder holding Troupe's `package.json`. */
export const PACKAGE_ROOT = findRoot(path.dirname(fileURLToPath(import.meta.url)));

/** An absolute path inside the package: `packagePath('drizzle')`. */
export function packagePath(...segments: string[]): string {
  return path.join(PACKAGE_ROOT, ...segments);
}

export const VERSION = (JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as { version: string }).version;
