/**
 * The data-dir lock on real directories and real processes: a missing dir is created, a second
 * taker is refused by name, a released or dead holder's lock is taken over (also when its pid
 * now belongs to another process), a holder on another host only once its heartbeat is stale, and processes
 * racing for one lock — free or stale — produce exactly one winner.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { lutimesSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { DataDirLockedError, lockDataDir, STALE_MS, type LockHolder } from '../src/datadir-lock.ts';

const HOLDER = fileURLToPath(new URL('./support/lock-holder.ts', import.meta.url));

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'troupe-lockunit-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const links = async (dir: string) => (await readdir(dir)).filter((n) => n.startsWith('troupe.lock')).sort();
const holderOf = async (file: string) => JSON.parse(await readlink(file)) as LockHolder;

interface Child {
  proc: ChildProcess;
  next(): Promise<{ pid: number; won?: boolean; holder?: number | null; message?: string }>;
  exited: Promise<void>;
}

/** A child process that takes the lock when told (test/support/lock-holder.ts). */
function child(dataDir: string): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', HOLDER, dataDir], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  cleanups.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  });
  const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  return {
    proc,
    exited,
    async next() {
      const line: IteratorResult<string, unknown> = await lines.next();
      if (line.done) throw new Error('the lock holder exited');
      return JSON.parse(line.value) as Awaited<ReturnType<Child['next']>>;
    },
  };
}

describe('lockDataDir', () => {
  it('creates a missing data dir, refuses a second taker by pid, and is free again once released', async () => {
    const dir = path.join(await tempDir(), 'data');
    const lock = await lockDataDir(dir);
    expect(await links(dir)).toEqual(['troupe.lock.1']);
    expect(await holderOf(lock.file)).toMatchObject({ pid: process.pid, host: os.hostname() });
    const refused = await lockDataDir(dir).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DataDirLockedError);
    expect((refused as Error).message).toContain(`data dir ${dir} is in use by troupe pid ${process.pid}`);
    lock.release();
    lock.release();
    expect(await holderOf(lock.file)).toMatchObject({ pid: process.pid, released: true });
    const again = await lockDataDir(dir);
    expect(await links(dir)).toEqual(['troupe.lock.2']);
    again.release();
  });

  it('takes over a lock left by a kill -9, and one whose pid now belongs to another process', async () => {
    const dir = await tempDir();
    const holder = child(dir);
    holder.proc.stdin!.write('lock\n');
    expect(await holder.next()).toMatchObject({ won: true });
    await expect(lockDataDir(dir)).rejects.toThrow(`is in use by troupe pid ${holder.proc.pid}`);
    holder.proc.kill('SIGKILL');
    await holder.exited;
    const mine = await lockDataDir(dir);
    expect(await links(dir)).toEqual(['troupe.lock.2']);

    // A recycled pid: alive, but not started when the lock says (here: this very process).
    const recycled = { ...(await holderOf(mine.file)), start: '1', token: 'old' };
    mine.release();
    await symlink(JSON.stringify(recycled), path.join(dir, 'troupe.lock.3'));
    const next = await lockDataDir(dir);
    expect(path.basename(next.file)).toBe('troupe.lock.4');
    next.release();

    // A pid that no longer exists at all.
    const { pid: gone } = spawnSync(process.execPath, ['-e', '']);
    await symlink(JSON.stringify({ ...recycled, pid: gone }), path.join(dir, 'troupe.lock.5'));
    (await lockDataDir(dir)).release();
  });

  it('takes over a holder on another host only once its heartbeat is stale, never a lock it did not write; names what to remove', async () => {
    const dir = await tempDir();
    const mine = await lockDataDir(dir);
    const foreign = { ...(await holderOf(mine.file)), host: 'elsewhere', pid: 1 };
    mine.release();
    await symlink(JSON.stringify(foreign), path.join(dir, 'troupe.lock.2'));
    await expect(lockDataDir(dir)).rejects.toThrow(`is in use by troupe pid 1 (since ${foreign.since}) on host elsewhere`);
    await expect(lockDataDir(dir)).rejects.toThrow(`remove ${path.join(dir, 'troupe.lock.2')}`);

    // Once that holder's heartbeat is older than STALE_MS (a container restarted in a new pid
    // namespace never touches it again), the lock is taken over.
    const old = new Date(Date.now() - STALE_MS - 5_000);
    lutimesSync(path.join(dir, 'troupe.lock.2'), old, old);
    const taken = await lockDataDir(dir);
    expect(taken.file).toBe(path.join(dir, 'troupe.lock.3'));
    taken.release();

    const other = await tempDir();
    await mkdir(other, { recursive: true });
    await writeFile(path.join(other, 'troupe.lock.7'), 'not a link');
    await expect(lockDataDir(other)).rejects.toThrow(`lock ${path.join(other, 'troupe.lock.7')} that troupe did not write`);
  });

  it('eight processes racing, for a free lock and then four times for the stale lock of a killed winner: one winner each time', async () => {
    const dir = await tempDir();
    let racers = Array.from({ length: 8 }, () => child(dir));
    for (let round = 0; round < 5; round += 1) {
      for (const r of racers) r.proc.stdin!.write('lock\n');
      const answers = await Promise.all(racers.map((r) => r.next()));
      const winners = answers.filter((a) => a.won);
      expect(winners, `round ${round}: ${JSON.stringify(answers)}`).toHaveLength(1);
      const winner = winners[0]!.pid;
      for (const a of answers.filter((x) => !x.won)) expect(a.holder).toBe(winner);
      expect((await holderOf(path.join(dir, (await links(dir)).at(-1)!))).pid).toBe(winner);
      // kill -9 the winner: its lock stays behind, stale, for the next round.
      const w = racers.find((r) => r.proc.pid === winner)!;
      w.proc.kill('SIGKILL');
      await w.exited;
      racers = racers.filter((r) => r !== w);
    }
    expect(await links(dir)).toHaveLength(1);
  });
});
