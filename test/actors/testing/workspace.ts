/**
 * Helpers for the test-runner tests: throwaway workspaces and checks on real processes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const created: string[] = [];

/** A fresh directory under the OS temp dir holding `files` (relative path → content). */
export async function makeWorkspace(files: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'troupe-tests-'));
  created.push(dir);
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return dir;
}

/** Removes every workspace made so far. */
export async function removeWorkspaces(): Promise<void> {
  const dirs = created.splice(0);
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
}

const canSeeZombies = existsSync('/proc/self/stat');

/**
 * Whether `pid` is a live process. A zombie counts as dead: a killed grandchild is reparented to
 * PID 1, and some container inits never reap, so `kill(pid, 0)` keeps succeeding on its corpse.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  if (!canSeeZombies) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state letter follows the parenthesised command name, which may itself contain spaces.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Polls `check` until it returns a value other than undefined; fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 5_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Waits for a child to write its pid to `file` (the handshake that says it is ready). */
export function readPid(file: string): Promise<number> {
  return waitFor(`pid in ${file}`, async () => {
    const text = await readFile(file, 'utf8').catch(() => '');
    return /^\d+$/.test(text) ? Number(text) : undefined;
  });
}

/** Waits (up to 2 s: SIGKILL delivery is asynchronous) for `pid` to be gone. */
export function waitForDeath(pid: number): Promise<true> {
  return waitFor(`pid ${pid} to die`, () => (isAlive(pid) ? undefined : true), 2_000);
}

/**
 * Programs run by the tests. `grandchild.cjs PIDFILE` ignores SIGTERM, holds the inherited stdout
 * open, writes its pid once the handler is installed and tells its parent over IPC.
 * `parent.cjs PIDFILE MODE` starts it and then: `hang` waits forever, `hang-ignore-term` also
 * ignores SIGTERM itself, `exit` exits 0 once the grandchild is ready, `escape` does the same
 * but with the grandchild in its own process group (out of reach of a group kill).
 */
export const PROGRAMS = {
  'grandchild.cjs': `
const fs = require('node:fs');
process.on('SIGTERM', () => {});
fs.writeFileSync(process.argv[2], String(process.pid));
console.log('grandchild ready');
if (process.send) process.send('ready');
setInterval(() => {}, 1000);
`,
  'parent.cjs': `
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const [pidFile, mode] = process.argv.slice(2);
fs.writeFileSync(pidFile + '.parent', String(process.pid));
if (mode === 'hang-ignore-term') process.on('SIGTERM', () => {});
const child = spawn(process.execPath, [path.join(__dirname, 'grandchild.cjs'), pidFile], {
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  detached: mode === 'escape',
});
child.on('message', () => {
  if (mode === 'exit' || mode === 'escape') process.exit(0);
});
setInterval(() => {}, 1000);
`,
} as const;
