/**
 * Where model-proposed files may be written (ARCHITECTURE rule 9). Every file of a request is
 * validated before anything touches the disk; then all files are staged as temp files next to
 * their destination and renamed into place, so a refusal or a failed write leaves nothing behind.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, chmod, lstat, mkdir, realpath, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { coerceError } from '../../errors.ts';
import { abortReason } from './git.ts';
import { checkRelativePath, isGitSegment } from './paths.ts';

/** Reported, not enforced: `create` and `modify` both write the whole content. */
export type FileAction = 'create' | 'modify' | 'delete';

/** One entry of the `write_files` tool input (CONTRACT §3). */
export interface ProposedFile {
  path: string;
  action: FileAction;
  content?: string | undefined;
}

/** What was written: `bytes` is the UTF-8 length of the content (0 for a delete). */
export interface AppliedFile {
  path: string;
  action: FileAction;
  bytes: number;
}

/**
 * `ok: false` means nothing was written; `path` is the refused path as proposed (not normalised). `fatal` marks a workspace no new model answer can fix
 * (missing, not a directory, read-only, full): the caller fails the task instead of correcting.
 */
export type ApplyResult =
  | { ok: true; files: AppliedFile[] }
  | { ok: false; reason: string; path?: string; fatal?: boolean };

/** Per request: at most `maxFiles` entries, each at most `maxFileBytes` of UTF-8 content (CONTRACT §5). */
export const LIMITS = { maxFiles: 200, maxFileBytes: 1024 * 1024 } as const;

type Refusal = Extract<ApplyResult, { ok: false }>;

interface Planned {
  path: string;
  action: FileAction;
  content: string;
  bytes: number;
  /** Real absolute destination (through in-workspace symlinks). */
  dest: string;
  /** Directories to create, outermost first; empty when the parent exists. */
  missingDirs: string[];
  /** Mode of the file being replaced, kept so an executable script stays executable. */
  mode: number | undefined;
  exists: boolean;
}

/** A file of a validated request, as it is about to be written. */
export interface PlannedWrite {
  /** Normalised, relative to the tree. */
  path: string;
  action: FileAction;
  /** Real absolute destination. */
  dest: string;
  /** The destination exists now. */
  exists: boolean;
}

export interface ApplyOptions {
  signal?: AbortSignal | undefined;
  /**
   * Called once every file is validated and staged, before anything is renamed into place: may
   * refuse the whole request (nothing is written) or keep what is about to be replaced.
   */
  beforeCommit?: (files: PlannedWrite[]) => Promise<{ reason: string; path?: string } | null>;
}

const FATAL_CODES = new Set(['EROFS', 'EACCES', 'EPERM', 'ENOSPC', 'EDQUOT']);

/**
 * Validates every proposed file, then writes all of them or none. Throws only when `signal` is
 * aborted (after removing anything staged); every other problem is an `ok: false` result.
 */
export async function applyFiles(root: string, files: readonly ProposedFile[], options: ApplyOptions | AbortSignal = {}): Promise<ApplyResult> {
  const { signal, beforeCommit } = options instanceof AbortSignal ? { signal: options, beforeCommit: undefined } : options;
  signal?.throwIfAborted();
  const realRoot = await resolveRoot(root);
  if (typeof realRoot !== 'string') return realRoot;
  if (files.length > LIMITS.maxFiles) {
    return { ok: false, reason: `too many files: ${files.length} (at most ${LIMITS.maxFiles})` };
  }
  const planned: Planned[] = [];
  const batch = new Batch(realRoot);
  for (const file of files) {
    signal?.throwIfAborted();
    const item = await planFile(realRoot, file);
    if ('ok' in item) return item;
    const clash = batch.add(item);
    if (clash !== null) return { ok: false, reason: clash, path: file.path };
    planned.push(item);
  }
  return writeAll(planned, signal, beforeCommit);
}

/**
 * Catches two entries of one request that would collide on disk: the same file (also through a
 * symlink), or one entry's file being another entry's directory (`a` and `a/b`), which would only
 * fail at rename time, half-way through the commit.
 */
class Batch {
  private readonly files = new Map<string, string>();
  private readonly dirs = new Map<string, string>();
  constructor(private readonly realRoot: string) {}

  add(item: Planned): string | null {
    const earlier = this.files.get(item.dest);
    if (earlier !== undefined) {
      return earlier === item.path ? 'duplicate path in one request' : `duplicate path in one request (same file as ${earlier})`;
    }
    const asDir = this.dirs.get(item.dest);
    if (asDir !== undefined) return `path is also a directory of ${asDir} in this request`;
    const ancestors: string[] = [];
    for (let dir = path.dirname(item.dest); dir !== this.realRoot && dir !== path.dirname(dir); dir = path.dirname(dir)) {
      const asFile = this.files.get(dir);
      if (asFile !== undefined) return `${asFile} is a file in this request, not a directory`;
      ancestors.push(dir);
    }
    this.files.set(item.dest, item.path);
    for (const dir of ancestors) this.dirs.set(dir, item.path);
    return null;
  }
}

async function resolveRoot(root: string): Promise<string | Refusal> {
  try {
    const info = await stat(root);
    if (!info.isDirectory()) return { ok: false, reason: `workspace is not a directory: ${root}`, fatal: true };
    return await realpath(root);
  } catch (thrown) {
    const error = coerceError(thrown);
    return { ok: false, reason: `workspace missing: ${root} (${error.message})`, fatal: true };
  }
}

/** Checks one file lexically and against the disk; never writes. */
async function planFile(realRoot: string, file: ProposedFile): Promise<Planned | Refusal> {
  const checked = checkRelativePath(file.path);
  const shown = typeof file.path === 'string' ? file.path : String(file.path);
  if (!checked.ok) return { ok: false, reason: checked.reason, path: shown };
  const rel = checked.path;
  if (file.action !== 'create' && file.action !== 'modify' && file.action !== 'delete') {
    return { ok: false, reason: `unknown action ${JSON.stringify(file.action)}`, path: shown };
  }
  let content = '';
  if (file.action !== 'delete') {
    if (typeof file.content !== 'string') return { ok: false, reason: `${file.action} without content`, path: shown };
    content = file.content;
  }
  const bytes = Buffer.byteLength(content, 'utf8');
  if (bytes > LIMITS.maxFileBytes) {
    return { ok: false, reason: `content is ${bytes} bytes (at most ${LIMITS.maxFileBytes})`, path: shown };
  }
  try {
    const found = await locate(realRoot, checked.segments, file.action === 'delete');
    if (typeof found === 'string') return { ok: false, reason: found, path: shown };
    return { path: rel, action: file.action, content, bytes, ...found };
  } catch (thrown) {
    return failure(thrown, shown, 'cannot check path');
  }
}

type Location = Pick<Planned, 'dest' | 'missingDirs' | 'mode' | 'exists'>;

/**
 * Walks the path from the real root one segment at a time with `lstat`, following a symlink only
 * after checking that it resolves inside the root. Returns the real destination or a refusal.
 */
async function locate(realRoot: string, segments: readonly string[], isDelete: boolean): Promise<Location | string> {
  let current = realRoot;
  for (const [i, segment] of segments.entries()) {
    const next = path.join(current, segment);
    const isLast = i === segments.length - 1;
    const info = await lstatOrNull(next);
    if (info === null) {
      const rest = segments.slice(i);
      const missingDirs = rest.slice(0, -1).map((_, k) => path.join(current, ...rest.slice(0, k + 1)));
      return checkInside(realRoot, path.join(current, ...rest), { missingDirs, mode: undefined, exists: false });
    }
    if (info.isSymbolicLink()) {
      const target = await realpath(next).catch(() => null);
      if (target === null) return 'path goes through a symlink that does not resolve';
      if (!isInside(realRoot, target, !isLast)) return 'path leads outside the workspace through a symlink';
      const targetInfo = await stat(target);
      if (isLast) {
        if (targetInfo.isDirectory()) return 'path is a directory (through a symlink)';
        // A delete removes the link itself; a write goes to the file it points to, keeping the link.
        if (isDelete) return checkInside(realRoot, next, { missingDirs: [], mode: undefined, exists: true });
        return checkInside(realRoot, target, { missingDirs: [], mode: targetInfo.mode, exists: true });
      }
      if (!targetInfo.isDirectory()) return `${segments.slice(0, i + 1).join('/')} is not a directory`;
      current = target;
      continue;
    }
    if (isLast) {
      if (info.isDirectory()) return 'path is an existing directory';
      if (!info.isFile()) return 'path is not a regular file';
      return checkInside(realRoot, next, { missingDirs: [], mode: info.mode, exists: true });
    }
    if (!info.isDirectory()) return `${segments.slice(0, i + 1).join('/')} is a file, not a directory`;
    current = next;
  }
  return 'path names the workspace root';
}

/** Final check on the real destination: inside the root, and not in a `.git` reached via a symlink. */
function checkInside(realRoot: string, dest: string, rest: Omit<Location, 'dest'>): Location | string {
  if (!isInside(realRoot, dest, false)) return 'path resolves outside the workspace';
  if (path.relative(realRoot, dest).split(path.sep).some(isGitSegment)) return 'path resolves inside .git';
  return { dest, ...rest };
}

function isInside(root: string, candidate: string, allowEqual: boolean): boolean {
  const rel = path.relative(root, candidate);
  if (rel === '') return allowEqual;
  return rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

async function lstatOrNull(p: string) {
  try {
    return await lstat(p);
  } catch (thrown) {
    const code = (thrown as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw thrown;
  }
}

/** Stage every write, then rename into place, then delete. */
async function writeAll(planned: readonly Planned[], signal: AbortSignal | undefined, beforeCommit: ApplyOptions['beforeCommit']): Promise<ApplyResult> {
  const writes = planned.filter((p) => p.action !== 'delete');
  const staged: { temp: string; dest: string }[] = [];
  const createdDirs: string[] = [];
  let current = '';
  try {
    for (const p of writes) {
      signal?.throwIfAborted();
      current = p.path;
      for (const dir of p.missingDirs) {
        if (createdDirs.includes(dir)) continue;
        // Another task writing into the same workspace (shared mode) may create it first: then it
        // is theirs, not ours to remove on a failure.
        if (await makeDir(dir)) createdDirs.push(dir);
      }
      // A short random name rather than `<name>.tmp`: long names would overflow NAME_MAX.
      const temp = path.join(path.dirname(p.dest), `.troupe-${randomBytes(6).toString('hex')}.tmp`);
      staged.push({ temp, dest: p.dest });
      await writeFile(temp, p.content, { flag: 'wx' });
      if (p.mode !== undefined) await chmod(temp, p.mode & 0o7777);
    }
    for (const p of planned) {
      signal?.throwIfAborted();
      current = p.path;
      // Deletes happen after the renames; check now that they can, so a refusal still writes nothing.
      if (p.action === 'delete' && p.exists) await access(path.dirname(p.dest), fsConstants.W_OK);
    }
    signal?.throwIfAborted();
    const verdict = await beforeCommit?.(planned.map((p) => ({ path: p.path, action: p.action, dest: p.dest, exists: p.exists })));
    if (verdict) {
      await cleanUp(staged.map((s) => s.temp), createdDirs);
      return { ok: false, ...verdict };
    }
  } catch (thrown) {
    await cleanUp(staged.map((s) => s.temp), createdDirs);
    if (signal?.aborted) throw abortReason(signal);
    return failure(thrown, current);
  }
  // The commit phase does not look at the signal: renames are quick, and stopping half-way is the
  // one thing that would leave a half-written change set.
  let renamed = 0;
  try {
    for (const { temp, dest } of staged) {
      await rename(temp, dest);
      renamed += 1;
    }
    for (const p of planned) if (p.action === 'delete') await rm(p.dest, { force: true });
  } catch (thrown) {
    await cleanUp(staged.slice(renamed).map((s) => s.temp), []);
    const result = failure(thrown, writes[renamed]?.path ?? current);
    return { ...result, reason: `${result.reason} (after ${renamed} of ${staged.length} files were written)` };
  }
  return { ok: true, files: planned.map((p) => ({ path: p.path, action: p.action, bytes: p.bytes })) };
}

async function cleanUp(temps: readonly string[], createdDirs: readonly string[]): Promise<void> {
  for (const temp of temps) await rm(temp, { force: true }).catch(() => undefined);
  // Innermost first; rmdir (not rm -r) so a directory someone else filled meanwhile survives.
  for (const dir of [...createdDirs].reverse()) await rmdir(dir).catch(() => undefined);
}

function failure(thrown: unknown, filePath: string, what = 'write failed'): Refusal {
  const error = coerceError(thrown);
  const code = (error as NodeJS.ErrnoException).code;
  const fatal = code !== undefined && FATAL_CODES.has(code);
  const result: Refusal = { ok: false, reason: `${what}: ${error.message}` };
  if (filePath) result.path = filePath;
  if (fatal) result.fatal = true;
  return result;
}

/** `mkdir` that accepts a directory created meanwhile by someone else; true when this call made it. */
async function makeDir(dir: string): Promise<boolean> {
  try {
    await mkdir(dir);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST' && (await stat(dir)).isDirectory()) return false;
    throw e;
  }
}
