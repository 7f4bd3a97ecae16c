/**
 * Temp directories, tree snapshots and a plain git runner for the workspace tests. The git runner
 * here is deliberately independent of src/actors/workspace/git.ts, so assertions do not go through
 * the code under test.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const made: string[] = [];

/** A fresh directory under the OS temp dir (real path: macOS links /var), removed by `removeTempDirs()`. */
export async function tempDir(): Promise<string> {
  const dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'troupe-ws-')));
  made.push(dir);
  return dir;
}

export async function removeTempDirs(): Promise<void> {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
}

/** Every entry under `dir` (including `.git`), with type, mode and content hash, sorted. */
export function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const childRel = rel ? `${rel}/${name}` : name;
      const full = path.join(dir, childRel);
      const info = lstatSync(full);
      if (info.isSymbolicLink()) out.push(`${childRel} -> ${readlinkSync(full)}`);
      else if (info.isDirectory()) {
        out.push(`${childRel}/`);
        walk(childRel);
      } else {
        const hash = createHash('sha1').update(readFileSync(full)).digest('hex').slice(0, 12);
        out.push(`${childRel} ${(info.mode & 0o777).toString(8)} ${hash}`);
      }
    }
  };
  walk('');
  return out;
}

/** Runs git with a clean environment (no GIT_DIR from a surrounding hook, no user config). */
export function sh(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: os.tmpdir(),
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_AUTHOR_NAME: 'Test',
      GIT_AUTHOR_EMAIL: 'test@localhost',
      GIT_COMMITTER_NAME: 'Test',
      GIT_COMMITTER_EMAIL: 'test@localhost',
    },
  }).trim();
}

/** A git repository with one commit containing `files`. */
export async function repoWith(files: Record<string, string>): Promise<string> {
  const dir = await tempDir();
  sh(dir, 'init', '-q', '-b', 'main');
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), content);
  }
  sh(dir, 'add', '-A');
  sh(dir, 'commit', '-q', '--allow-empty', '-m', 'base');
  return dir;
}

/** A per-project mutex like the one the runtime provides; `held` shows whether it is taken. */
export function mutex(): { lock: <T>(fn: () => Promise<T>) => Promise<T>; held: () => boolean } {
  let tail: Promise<unknown> = Promise.resolve();
  let busy = false;
  const lock = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(async () => {
      busy = true;
      try {
        return await fn();
      } finally {
        busy = false;
      }
    });
    tail = run.catch(() => undefined);
    return run;
  };
  return { lock, held: () => busy };
}
