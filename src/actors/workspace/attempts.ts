/**
 * What each attempt of a task changed, kept on disk beside the worktrees: for every file an
 * answer touched, its content before the answer was applied and after. This is what lets a
 * reviewer see exactly what an attempt wrote (the diff route), lets a rejected attempt be undone
 * (the tree goes back to where it was before it), and tells which files a task may commit — only
 * the files its answers wrote or deleted, never artefacts a test run left behind.
 *
 * Layout: `<root>/e<epoch>/a<attempt>/{manifest.json, before/<path>, after/<path>, discarded}`.
 * The manifest is written last, after the `before/` copies: a manifest that exists means the
 * attempt's "before" is complete, and an apply that runs again after a crash (its files already
 * on disk) must not overwrite it.
 */
import { copyFile, lstat, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

interface Manifest {
  files: { path: string; existed: boolean }[];
}

/** One file a task changed: where its old and new contents are kept (null: it did not exist). */
export interface FileChange {
  path: string;
  before: string | null;
  after: string | null;
}

export function attemptDir(root: string, epoch: number, attempt: number): string {
  return path.join(root, `e${epoch}`, `a${attempt}`);
}

const isFile = async (p: string) => (await lstat(p).catch(() => null))?.isFile() === true;

async function readManifest(dir: string): Promise<Manifest | null> {
  const text = await readFile(path.join(dir, 'manifest.json'), 'utf8').catch(() => null);
  return text === null ? null : (JSON.parse(text) as Manifest);
}

/**
 * Keeps the current content of the files an answer is about to write (`dest`: the real path in
 * the tree). A no-op when this attempt's "before" was already recorded.
 */
export async function recordBefore(dir: string, files: readonly { path: string; dest: string }[]): Promise<void> {
  if ((await readManifest(dir)) !== null) return;
  await rm(dir, { recursive: true, force: true });
  const manifest: Manifest = { files: [] };
  for (const f of files) {
    const existed = await isFile(f.dest);
    if (existed) await copyInto(f.dest, path.join(dir, 'before', f.path));
    manifest.files.push({ path: f.path, existed });
  }
  await mkdir(dir, { recursive: true });
  const temp = path.join(dir, 'manifest.json.tmp');
  await writeFile(temp, JSON.stringify(manifest));
  await rename(temp, path.join(dir, 'manifest.json'));
}

/** Keeps the content the answer left in `tree` for each file it touched. */
export async function recordAfter(dir: string, tree: string): Promise<void> {
  const manifest = await readManifest(dir);
  if (manifest === null) return;
  await rm(path.join(dir, 'after'), { recursive: true, force: true });
  for (const f of manifest.files) {
    const now = path.join(tree, f.path);
    if (await isFile(now)) await copyInto(now, path.join(dir, 'after', f.path));
  }
}

async function copyInto(from: string, to: string): Promise<void> {
  await mkdir(path.dirname(to), { recursive: true });
  await copyFile(from, to);
}

/** The recorded attempts of an epoch, oldest first (numeric order). */
async function attemptsOf(root: string, epoch: number): Promise<number[]> {
  const names = await readdir(path.join(root, `e${epoch}`)).catch(() => [] as string[]);
  return names
    .map((n) => /^a(\d+)$/.exec(n)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/** The files one attempt changed (also when it was later discarded). */
export async function attemptChanges(root: string, epoch: number, attempt: number): Promise<FileChange[] | null> {
  const dir = attemptDir(root, epoch, attempt);
  const manifest = await readManifest(dir);
  if (manifest === null) return null;
  return Promise.all(manifest.files.map((f) => changeOf(dir, f)));
}

async function changeOf(dir: string, f: Manifest['files'][number]): Promise<FileChange> {
  const after = path.join(dir, 'after', f.path);
  return { path: f.path, before: f.existed ? path.join(dir, 'before', f.path) : null, after: (await isFile(after)) ? after : null };
}

/**
 * What the task's kept attempts of `epoch` changed together: per file, its content before the
 * first attempt that touched it and after the last one. Discarded (rejected) attempts are left
 * out; files that ended as they began are too.
 */
export async function taskChanges(root: string, epoch: number): Promise<FileChange[]> {
  const byPath = new Map<string, FileChange>();
  for (const attempt of await attemptsOf(root, epoch)) {
    const dir = attemptDir(root, epoch, attempt);
    if (await isFile(path.join(dir, 'discarded'))) continue;
    const manifest = await readManifest(dir);
    for (const f of manifest?.files ?? []) {
      const change = await changeOf(dir, f);
      const first = byPath.get(f.path);
      byPath.set(f.path, { path: f.path, before: first ? first.before : change.before, after: change.after });
    }
  }
  const out: FileChange[] = [];
  for (const change of byPath.values()) if (!(await sameContent(change.before, change.after))) out.push(change);
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

async function sameContent(a: string | null, b: string | null): Promise<boolean> {
  if (a === null || b === null) return a === b;
  const [x, y] = await Promise.all([readFile(a), readFile(b)]);
  return x.equals(y);
}

/**
 * Undoes an attempt in `tree`: every file it touched gets its "before" content back (or is removed
 * when it did not exist), and the attempt is marked discarded. Safe to run again.
 */
export async function discardAttempt(root: string, epoch: number, attempt: number, tree: string): Promise<string[]> {
  const dir = attemptDir(root, epoch, attempt);
  const manifest = await readManifest(dir);
  if (manifest === null) return [];
  // Already undone (this runs again after a crash): later attempts may have written since.
  if (await isFile(path.join(dir, 'discarded'))) return manifest.files.map((f) => f.path);
  for (const f of manifest.files) {
    const target = path.join(tree, f.path);
    if (f.existed) await copyInto(path.join(dir, 'before', f.path), target);
    else await rm(target, { force: true });
  }
  await writeFile(path.join(dir, 'discarded'), '');
  return manifest.files.map((f) => f.path);
}
