/**
 * One process per data dir (README "One process per data dir"). Two processes on one PGlite
 * cluster corrupt it (acknowledged writes lost, a broken index, a cluster that no longer starts),
 * and two services on one data dir write into each other's worktrees; so `serve`, `run`, `demo`
 * and `migrate` take this lock before they open the database.
 *
 * The lock is a generation of symlinks `<dataDir>/troupe.lock.<n>` whose target is the holder:
 * pid, the process's start time (from /proc, so a recycled pid is not mistaken for the holder),
 * boot id, pid namespace and hostname. A symlink, as Emacs does for its lock files, because
 * creating one is atomic and exclusive and its content is never seen half written.
 *
 * - Acquire: read the highest `n`. A live holder → `DataDirLockedError` naming it, and nothing
 *   was written. Free (none, released, or its holder is gone) → create `n + 1` (exclusive); the
 *   creator then holds the lock iff `n + 1` is still the highest, and removes the older ones.
 *   Two starters racing for one stale lock both try the same `n + 1`: exactly one creates it.
 *   A slower one that read an older generation either finds its name taken or, if it was already
 *   removed, sees a higher one and backs off: a generation is removed only after a higher one
 *   exists, so the highest never goes back.
 * - Release: the holder turns its own link into a `released` marker (a rename, atomic) instead of
 *   deleting it, for the same reason: deleting the highest would let numbers be reused.
 * - `kill -9`: the link stays; the next start finds its holder gone and takes over.
 * - Heartbeat: the holder touches its link (mtime) every `BEAT_MS`. A holder this process cannot
 *   check by pid (another host, another container's pid namespace: a restarted container gets a
 *   new one) is taken as alive until its link is `STALE_MS` old, then taken over.
 *
 * Rejected: proper-lockfile and lockfile (npm) judge staleness by mtime, not by pid — a `kill -9`
 * blocks the next start for the stale period and a stalled holder loses its lock; flock(2) needs
 * a native addon (fs-ext), which `npm ci` would have to compile.
 */
import { lutimesSync, readFileSync, readlinkSync, renameSync, symlinkSync } from 'node:fs';
import { lstat, mkdir, readdir, readlink, symlink, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

const LINK = /^troupe\.lock\.(\d+)$/;
/** How often the holder touches its link. */
const BEAT_MS = 10_000;
/** A holder that cannot be checked by pid and has not touched its link for this long is gone. */
export const STALE_MS = 60_000;

const holderSchema = z.object({
  pid: z.number().int().positive(),
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot); null where there is no /proc. */
  start: z.string().nullable(),
  boot: z.string().nullable(),
  pidns: z.string().nullable(),
  host: z.string(),
  since: z.string(),
  token: z.string(),
  released: z.literal(true).optional(),
});
export type LockHolder = z.infer<typeof holderSchema>;

/** The data dir is held by another live process (or, on another host, one this one cannot check). */
export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError';
  constructor(
    readonly dataDir: string,
    readonly holder: LockHolder | null,
    message: string,
  ) {
    super(message);
  }
}

export interface DataDirLock {
  /** The link that records this process as the holder. */
  readonly file: string;
  readonly holder: LockHolder;
  /** Marks the lock released. Idempotent; also runs on `process.exit`. */
  release(): void;
}

type Top = { n: number; file: string; holder: LockHolder | null; touchedMs: number } | null;

const held = new Set<() => void>();
let exitHook = false;

/** Takes the data dir for this process, creating the dir if it does not exist yet. */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const dir = path.resolve(dataDir);
  const me = identity(process.pid);
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const top = await readTop(dir);
    if (top) {
      const busy = busyReason(dir, top, me);
      if (busy) throw busy;
    }
    await mkdir(dir, { recursive: true });
    const n = (top?.n ?? 0) + 1;
    const file = path.join(dir, `troupe.lock.${n}`);
    const holder: LockHolder = { ...me, since: new Date().toISOString(), token: randomBytes(8).toString('hex') };
    try {
      await symlink(JSON.stringify(holder), file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw e;
    }
    const generations = await listGenerations(dir);
    if (Math.max(...generations) !== n) {
      // Lost to a newer generation made while this one read an older state: look again.
      await unlink(file).catch(() => undefined);
      continue;
    }
    for (const k of generations) if (k < n) await unlink(path.join(dir, `troupe.lock.${k}`)).catch(() => undefined);
    return hold(file, holder);
  }
  throw new Error(`could not take the lock of data dir ${dir}: too many processes starting on it at once`);
}

function hold(file: string, holder: LockHolder): DataDirLock {
  let released = false;
  const beat = setInterval(() => {
    try {
      const now = new Date();
      lutimesSync(file, now, now);
    } catch {
      // Gone (a test removed the data dir, or a person the link): nothing to keep fresh.
    }
  }, BEAT_MS);
  beat.unref();
  const release = () => {
    if (released) return;
    released = true;
    clearInterval(beat);
    held.delete(release);
    try {
      // Only if the link is still ours (a person may have removed it by hand, and another taken it).
      if (readlinkSync(file) !== JSON.stringify(holder)) return;
      const marker = `${file}.${holder.token}`;
      symlinkSync(JSON.stringify({ ...holder, released: true }), marker);
      renameSync(marker, file);
    } catch {
      // The data dir is gone (a test removed it): nothing left to release.
    }
  };
  held.add(release);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const r of [...held]) r();
    });
  }
  return { file, holder, release };
}

async function listGenerations(dir: string): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return names.flatMap((name) => {
    const m = LINK.exec(name);
    return m ? [Number(m[1])] : [];
  });
}

/** The highest generation and its holder (null: the link is not one of ours). */
async function readTop(dir: string): Promise<Top> {
  for (;;) {
    const generations = await listGenerations(dir);
    if (generations.length === 0) return null;
    const n = Math.max(...generations);
    const file = path.join(dir, `troupe.lock.${n}`);
    let target: string;
    let touchedMs: number;
    try {
      touchedMs = (await lstat(file)).mtimeMs;
      target = await readlink(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue; // a newer generation replaced it meanwhile
      if (code === 'EINVAL') return { n, file, holder: null, touchedMs: 0 }; // not a symlink
      throw e;
    }
    const parsed = holderSchema.safeParse(parseJson(target));
    return { n, file, holder: parsed.success ? parsed.data : null, touchedMs };
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** Why the top generation still holds the data dir, or null when it is free to take. */
function busyReason(dir: string, top: NonNullable<Top>, me: Omit<LockHolder, 'since' | 'token'>): DataDirLockedError | null {
  const h = top.holder;
  if (!h) return new DataDirLockedError(dir, null, `data dir ${dir} has a lock ${top.file} that troupe did not write: remove it if no troupe process uses this data dir`);
  if (h.released) return null;
  const at = `pid ${h.pid} (since ${h.since})`;
  const sameMachine = h.host === me.host && h.pidns === me.pidns;
  if (sameMachine && h.boot !== null && me.boot !== null && h.boot !== me.boot) return null; // rebooted since
  if (!sameMachine) {
    // Another host or container: its pids mean nothing here, so its heartbeat decides.
    const quietMs = Date.now() - top.touchedMs;
    if (quietMs > STALE_MS) return null;
    return new DataDirLockedError(
      dir,
      h,
      `data dir ${dir} is in use by troupe ${at} on host ${h.host} (another machine or container, which this one cannot check; its lock was touched ${Math.round(quietMs / 1000)} s ago and is taken over once it is ${STALE_MS / 1000} s old): stop it first; if it is gone, remove ${top.file}`,
    );
  }
  if (!alive(h)) return null;
  return new DataDirLockedError(dir, h, `data dir ${dir} is in use by troupe ${at}: stop that process first, or use another data dir (--data-dir, TROUPE_DATA_DIR)`);
}

/** Is the holder still running: its pid exists, is no zombie and, where /proc tells, started when it said. */
function alive(h: LockHolder): boolean {
  let otherUser = false;
  try {
    process.kill(h.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false; // ESRCH: no such process
    otherUser = true;
  }
  const stat = procStat(h.pid);
  // No /proc here (the pid is all there is to go by), or another user's entry is hidden (hidepid).
  if (!stat) return h.start === null || otherUser;
  // A holder killed but not yet reaped by its parent is a zombie: gone, though its pid answers.
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return h.start === null || stat.start === h.start;
}

function identity(pid: number): Omit<LockHolder, 'since' | 'token'> {
  return {
    pid,
    start: procStat(pid)?.start ?? null,
    boot: readOrNull(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()),
    pidns: readOrNull(() => readlinkSync('/proc/self/ns/pid')),
    host: os.hostname(),
  };
}

/** State and start time (field 22, clock ticks after boot) from /proc/<pid>/stat; null without /proc. */
function procStat(pid: number): { state: string; start: string } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ")".
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] && fields[19] ? { state: fields[0], start: fields[19] } : null;
  } catch {
    return null;
  }
}

function readOrNull(read: () => string | null): string | null {
  try {
    return read();
  } catch {
    return null;
  }
}
