/**
 * The bubblewrap sandbox around a project's test command (README "Security model → Sandbox").
 *
 * Threat: the test command runs code the model wrote. That code must not read the service's
 * secrets (other processes' `/proc/<pid>/environ`, the data dir with the database files, the
 * user's home), reach the network or the service's loopback API, write anywhere but the task's
 * tree, tamper with the git metadata the service's own git later reads (a planted
 * `core.fsmonitor` or hook would run outside the sandbox), or leave a process behind — after the
 * run or after a `kill -9` of the service.
 *
 * Answer: `bwrap` with every namespace it can unshare (PID, network, IPC, UTS, user, cgroup), no
 * capabilities, `--die-with-parent` (bwrap dies with the service; the namespace's init dies with
 * bwrap and takes every process in it along), `--new-session` (no TIOCSTI into our terminal). The
 * system is visible read-only; home, the hidden paths and sockets under /run are empty read-only
 * tmpfs; /tmp is a private tmpfs. Writable: the tree and a fresh private dir (HOME, TMPDIR).
 *
 * Mounts apply in argv order, so binds come after the tmpfs they may sit inside (worktrees live
 * in `<dataDir>/worktrees/…`, which is hidden).
 */
import { spawn } from 'node:child_process';
import { lstat, mkdtemp, readFile, readdir, realpath, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * Top-level links into the tree that may point into a hidden dir: the ones `prepareTaskTree`
 * makes (task-tree.ts `linkIgnoredDirs`). Only these, and only to a directory of the same name:
 * a link an earlier test run left (`x -> ~/.ssh`) must not open a hidden dir to the next run.
 */
const LINKED_NAMES = new Set(['node_modules']);

/** Hidden on every run besides home and the caller's `hidePaths`: other users' homes, sockets. */
const ALWAYS_HIDDEN = ['/home', '/root', '/run', '/var/run', '/var/tmp'];

export interface SandboxRequest {
  argv: readonly string[];
  /** The task's tree: the only writable place besides the private dir. */
  cwd: string;
  env: Record<string, string>;
  network: boolean;
  hidePaths: readonly string[];
}

export interface PreparedSandbox {
  /** `bwrap …options -- …argv`; `[0]` is `bwrap`. */
  argv: string[];
  /** The child's env with HOME, TMPDIR, TMP and TEMP pointing at the private dir. */
  env: Record<string, string>;
  /** Removes the private dir. Call once the run is over. */
  dispose(): Promise<void>;
}

export async function prepareSandbox(req: SandboxRequest): Promise<PreparedSandbox> {
  const tree = await realpath(req.cwd);
  const privateDir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'troupe-sandbox-')));
  try {
    // The looks at the filesystem that do not depend on one another go out at once: a test run
    // waits for them, and on a busy machine each one queues for the thread pool.
    const [wanted, linked, git, pathDirs, resolv, hasDotGit] = await Promise.all([
      existingReal([os.homedir(), req.env.HOME, ...ALWAYS_HIDDEN, ...req.hidePaths]),
      linkedTargets(tree),
      gitDir(tree),
      existingReal((req.env.PATH ?? '').split(':').filter((d) => path.isAbsolute(d))),
      realpath('/etc/resolv.conf').catch(() => null),
      exists(path.join(tree, '.git')),
    ]);
    // A hidden dir inside the tree (a data dir `./.troupe` in a shared workspace) is mounted
    // after the tree's bind, everything else before it.
    const hiddenAround = outermost(wanted.filter((d) => !within(d, tree) && d !== '/tmp'));
    const hiddenInTree = outermost(wanted.filter((d) => within(d, tree)));
    const readOnly = [...linked, ...git, ...hiddenPathDirs(pathDirs, hiddenAround)];
    // With the network on, name lookups still work when /etc/resolv.conf links into /run.
    if (req.network && resolv !== null && hiddenAround.some((h) => within(resolv, h))) readOnly.push(resolv);
    const args = ['--unshare-all', ...(req.network ? ['--share-net'] : []), '--die-with-parent', '--new-session', '--cap-drop', 'ALL'];
    args.push('--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp');
    for (const dir of hiddenAround) args.push('--tmpfs', dir);
    for (const dir of unique(readOnly).sort()) args.push('--ro-bind', dir, dir);
    args.push('--bind', tree, tree, '--bind', privateDir, privateDir);
    // The tree's own `.git` (a worktree's pointer file, or the repository in shared mode) stays
    // read-only inside the writable tree; a mount point cannot be renamed or removed either.
    const dotGit = path.join(tree, '.git');
    if (hasDotGit) args.push('--ro-bind', dotGit, dotGit);
    for (const dir of hiddenInTree) args.push('--tmpfs', dir);
    // Writes into a hidden dir fail (EROFS) rather than vanish; binds inside it stay as they are.
    for (const dir of [...hiddenAround, ...hiddenInTree]) args.push('--remount-ro', dir);
    args.push('--chdir', tree, '--', ...req.argv);
    const env = { ...req.env, HOME: privateDir, TMPDIR: privateDir, TMP: privateDir, TEMP: privateDir };
    return { argv: ['bwrap', ...args], env, dispose: () => rm(privateDir, { recursive: true, force: true }) };
  } catch (e) {
    await rm(privateDir, { recursive: true, force: true });
    throw e;
  }
}

/**
 * `bwrap: execvp X: …` on its own, exit 1: the program was not found inside the sandbox (or
 * could not be run); bwrap's own setup failures look the same (`bwrap: Can't …`).
 */
export function sandboxStartFailure(exitCode: number | null, output: string): string | null {
  const line = output.trim();
  if (exitCode !== 1 || !line.startsWith('bwrap: ') || line.includes('\n')) return null;
  const execvp = /^bwrap: execvp (.*): (No such file or directory|Permission denied)$/.exec(line);
  if (execvp) return execvp[2] === 'Permission denied' ? `permission denied: ${execvp[1]}` : `command not found: ${execvp[1]}`;
  return `sandbox failed to start: ${line.slice('bwrap: '.length)}`;
}

/**
 * bwrap passes on the command's exit code, and a death by signal N as exit code 128 + N (as a
 * shell does): turned back into the signal. A command that itself exits 128 + N reads the same.
 */
export function sandboxExit(code: number | null, signal: NodeJS.Signals | null): { code: number | null; signal: NodeJS.Signals | null } {
  if (signal !== null || code === null || code <= 128) return { code, signal };
  const name = Object.entries(os.constants.signals).find(([, n]) => n === code - 128)?.[0] as NodeJS.Signals | undefined;
  return name === undefined ? { code, signal } : { code: null, signal: name };
}

let available: Promise<boolean> | undefined;

/**
 * Whether bubblewrap is on PATH and can actually build a sandbox here (a container without user
 * namespaces has the binary but cannot use it). Asked once per process.
 */
export function bwrapAvailable(): Promise<boolean> {
  available ??= new Promise<boolean>((resolve) => {
    const probe = spawn('bwrap', ['--unshare-all', '--die-with-parent', '--new-session', '--cap-drop', 'ALL', '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', 'true'], {
      stdio: 'ignore',
    });
    const timer = setTimeout(() => probe.kill('SIGKILL'), 10_000);
    probe.on('error', () => resolve(false));
    probe.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
  });
  return available;
}

/**
 * Targets of the tree's top-level `node_modules`-style links (not deeper: links further down
 * are the project's own business and resolve to what the sandbox shows).
 */
async function linkedTargets(tree: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(tree, { withFileTypes: true })) {
    if (!entry.isSymbolicLink() || !LINKED_NAMES.has(entry.name)) continue;
    const target = await realpath(path.join(tree, entry.name)).catch(() => null);
    if (target === null || target === tree || within(target, tree) || path.basename(target) !== entry.name) continue;
    if ((await stat(target)).isDirectory()) out.push(target);
  }
  return out;
}

/**
 * A worktree's `.git` is a file pointing into the main repository (`<repo>/.git/worktrees/<name>`).
 * Tests rarely need git, but some do (setuptools-scm versions, `vitest --changed`): the main
 * `.git` is bound read-only — the project's own history; writes (config, hooks, index) fail.
 * Anything but that layout is ignored, so the pointer cannot open an arbitrary dir.
 */
async function gitDir(tree: string): Promise<string[]> {
  const text = await readFile(path.join(tree, '.git'), 'utf8').catch(() => null);
  const gitdir = /^gitdir: (.+)$/m.exec(text ?? '')?.[1];
  if (gitdir === undefined) return [];
  const dir = path.resolve(tree, gitdir.trim());
  const common = path.dirname(path.dirname(dir));
  if (path.basename(path.dirname(dir)) !== 'worktrees' || path.basename(common) !== '.git') return [];
  return existingReal([common]);
}

/** PATH entries (existing, real) inside a hidden dir (`~/.cargo/bin`, nvm's `bin`), so the programs there still run. */
function hiddenPathDirs(dirs: readonly string[], hidden: readonly string[]): string[] {
  return dirs.filter((d) => hidden.some((h) => within(d, h)));
}

/** The real paths of those of `paths` that are directories (not `/`), in the order given. */
async function existingReal(paths: readonly (string | undefined)[]): Promise<string[]> {
  const found = await Promise.all(
    paths.map(async (p) => {
      if (p === undefined || !path.isAbsolute(p)) return null;
      const real = await realpath(p).catch(() => null);
      return real !== null && real !== '/' && (await stat(real)).isDirectory() ? real : null;
    }),
  );
  return unique(found.filter((p): p is string => p !== null));
}

/** Drops every path inside another one of the list. */
function outermost(paths: readonly string[]): string[] {
  return unique(paths)
    .filter((p) => !paths.some((q) => within(p, q)))
    .sort();
}

/** `p` strictly inside `dir`. */
function within(p: string, dir: string): boolean {
  return p.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);
}

function unique(paths: readonly string[]): string[] {
  return [...new Set(paths)];
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}
