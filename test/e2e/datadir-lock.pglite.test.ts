/**
 * One process per data dir, from outside: the real `troupe` executable on a PGlite data dir. A
 * second `serve` or `migrate` exits 1 at once naming the holder's pid and changes nothing in the
 * data dir; after a `kill -9` of the holder the next start takes the stale lock over; two
 * starters racing for a stale lock: one serves, the other names it. A busy port fails the start
 * (exit 2) before any run is resumed.
 */
import { spawn } from 'node:child_process';
import { lstat, mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startScriptedModel, type Reply } from '../../src/scripted-model/server.ts';
import { listening, troupeKilledAfter, type Proc } from '../support/cli.ts';
import { moduleWithTest } from '../support/replies.ts';

const LOCK_HOLDER = fileURLToPath(new URL('../support/lock-holder.ts', import.meta.url));

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'troupe-lock-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const spawnTroupe = (args: string[], env: Record<string, string>): Proc => troupeKilledAfter(cleanups, args, env);

const serve = (dataDir: string, env: Record<string, string> = {}, port = '0') => spawnTroupe(['serve', '--port', port, '--data-dir', dataDir], env);

/** Every entry under `dir` (recursive) with its type, size and mtime; a link with its target. */
async function listing(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      const p = path.join(d, name);
      const s = await lstat(p);
      const rel = path.relative(dir, p);
      if (s.isSymbolicLink()) out[rel] = `link -> ${await readlink(p)}`;
      else if (s.isDirectory()) {
        out[rel] = 'dir';
        await walk(p);
      } else out[rel] = `file ${s.size} bytes, mtime ${s.mtimeMs}`;
    }
  };
  await walk(dir);
  return out;
}

async function lockHolderPid(dataDir: string): Promise<number> {
  const links = (await readdir(dataDir)).filter((n) => /^troupe\.lock\.\d+$/.test(n));
  expect(links).toHaveLength(1);
  return (JSON.parse(await readlink(path.join(dataDir, links[0]!))) as { pid: number }).pid;
}

async function health(url: string): Promise<unknown> {
  const res = await fetch(`${url}/health`);
  expect(res.status).toBe(200);
  return res.json();
}

/** Exit code (or 'listening' if it served instead) and how long it took from spawn. */
async function exitOrListen(p: Proc, spawnedAt: number): Promise<{ code: number | null | 'listening'; ms: number }> {
  const code = await Promise.race([p.exit, listening(p).then(() => 'listening' as const, () => p.exit)]);
  return { code, ms: Date.now() - spawnedAt };
}

describe('one process per PGlite data dir', () => {
  it('a second serve and a migrate exit 1 at once naming the holder and write nothing; after kill -9 the next start takes over', async () => {
    // A data dir that does not exist yet: the first process creates it.
    const dataDir = path.join(await tempDir(), 'data');
    const first = serve(dataDir);
    const url = await listening(first);
    const holder = first.child.pid!;
    const before = await listing(dataDir);
    expect(Object.keys(before)).toContain('pgdata');

    const t0 = Date.now();
    const second = serve(dataDir);
    const s = await exitOrListen(second, t0);
    expect(s.code).toBe(1);
    expect(second.stderr()).toContain(`data dir ${dataDir} is in use by troupe pid ${holder}`);
    expect(second.stderr().trim().split('\n')).toHaveLength(1); // one line, no stack trace
    // "At once": it stops at the lock, before a service could even have opened its database.
    expect(s.ms).toBeLessThan(10_000);

    const t1 = Date.now();
    const migrate = spawnTroupe(['migrate'], { TROUPE_DATA_DIR: dataDir });
    const m = await exitOrListen(migrate, t1);
    expect(m.code).toBe(1);
    expect(migrate.stderr()).toContain(`is in use by troupe pid ${holder}`);
    expect(migrate.stdout()).not.toMatch(/migrations applied/);

    expect(await listing(dataDir)).toEqual(before);
    expect(await health(url)).toMatchObject({ status: 'ok' });
    expect(await lockHolderPid(dataDir)).toBe(holder);
    console.log(`second serve exited after ${s.ms} ms, migrate after ${m.ms} ms`);

    // kill -9: the lock stays behind, naming a process that is gone; the next start takes it over.
    first.child.kill('SIGKILL');
    await first.exit;
    const third = serve(dataDir);
    const thirdUrl = await listening(third);
    expect(await health(thirdUrl)).toMatchObject({ status: 'ok', db: 'ok' });
    expect(await lockHolderPid(dataDir)).toBe(third.child.pid);

    // A clean stop releases it: a migrate right after succeeds.
    third.child.kill('SIGTERM');
    expect(await third.exit).toBe(0);
    const after = spawnTroupe(['migrate'], { TROUPE_DATA_DIR: dataDir });
    expect(await after.exit).toBe(0);
    expect(after.stdout()).toMatch(/migrations applied/);
  });

  it('two starters racing for a stale lock: exactly one serves, the other exits 1 naming it', async () => {
    // A stale lock, as a kill -9 leaves it (a small process that took the lock, then killed).
    const dataDir = await tempDir();
    const dead = spawn(process.execPath, ['--import', 'tsx', LOCK_HOLDER, dataDir], { stdio: ['pipe', 'pipe', 'inherit'] });
    const deadExit = new Promise((resolve) => dead.on('exit', resolve));
    dead.stdin.write('lock\n');
    await new Promise((resolve) => dead.stdout.once('data', resolve));
    dead.kill('SIGKILL');
    await deadExit;
    expect(await lockHolderPid(dataDir)).toBe(dead.pid);

    const racers = [serve(dataDir), serve(dataDir)];
    const outcomes = await Promise.all(
      racers.map((p) =>
        Promise.race([listening(p).then((url) => ({ p, url })), p.exit.then((code) => ({ p, code }))]).catch(() => p.exit.then((code) => ({ p, code }))),
      ),
    );
    const winners = outcomes.filter((o): o is { p: Proc; url: string } => 'url' in o);
    const losers = outcomes.filter((o): o is { p: Proc; code: number | null } => 'code' in o);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(1);
    expect(losers[0]!.code).toBe(1);
    expect(losers[0]!.p.stderr()).toContain(`is in use by troupe pid ${winners[0]!.p.child.pid}`);
    expect(await health(winners[0]!.url)).toMatchObject({ status: 'ok' });
    expect(await lockHolderPid(dataDir)).toBe(winners[0]!.p.child.pid);
  });

  it('a busy port fails the start with exit 2 before any run is resumed', async () => {
    let first = true;
    const model = await startScriptedModel((req): Reply => {
      if (first) {
        first = false;
        return { kind: 'hang' };
      }
      return moduleWithTest(req.taskKey!, 'ok');
    });
    cleanups.push(() => model.close());
    const env = { ANTHROPIC_BASE_URL: model.url, ANTHROPIC_API_KEY: 'sk-lock', TROUPE_MODEL_MAX_RETRIES: '0' };
    const dataDir = await tempDir();
    const one = serve(dataDir, env);
    const url = await listening(one);
    const post = async (route: string, body: unknown) => {
      const res = await fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(res.status).toBeLessThan(300);
      return (await res.json()) as Record<string, unknown>;
    };
    const project = await post('/api/projects', { name: 'busy-port', testCommand: 'node --test', config: { sandbox: { mode: 'none' } } });
    await post(`/api/projects/${String(project.id)}/tasks`, { tasks: [{ key: 'a', title: 'A', description: '' }] });
    await post(`/api/projects/${String(project.id)}/start`, {});
    await model.waitForRequest((q) => q.taskKey === 'a');
    one.child.kill('SIGKILL');
    await one.exit;

    // The run is left active; a restart on a busy port must not resume it (no second model call).
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => blocker.close(resolve)));
    const busyPort = (blocker.address() as net.AddressInfo).port;
    const window = { from: new Date().toISOString(), to: '' };
    const two = serve(dataDir, env, String(busyPort));
    expect(await two.exit).toBe(2);
    window.to = new Date().toISOString();
    expect(two.stderr()).toContain(`port ${busyPort} on 127.0.0.1 is in use`);
    expect(model.requests).toHaveLength(1);

    // On a free port the same data dir resumes the run: the model is asked again. The event log
    // has nothing from the refused start.
    const three = serve(dataDir, env);
    const threeUrl = await listening(three);
    await model.waitForRequest((q) => q.taskKey === 'a' && q !== model.requests[0]);
    expect(model.requests).toHaveLength(2);
    const log = (await (await fetch(`${threeUrl}/api/projects/${String(project.id)}/events/log?limit=1000`)).json()) as { events: { type: string; at: string }[] };
    expect(log.events.filter((e) => e.at >= window.from && e.at <= window.to)).toEqual([]);
  });
});
