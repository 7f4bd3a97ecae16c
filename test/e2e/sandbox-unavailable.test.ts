/**
 * A machine without bubblewrap (here: a PATH that has git but no bwrap): projects asking for the
 * sandbox are refused with 422 before anything is created, and the opt-out works; `troupe demo`
 * says it runs unconfined and still completes.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { listening, troupe } from '../support/cli.ts';
import { isolatedDatabase } from '../support/db.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'troupe-nobwrap-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A PATH with the programs Troupe and the tests need, and no bwrap. */
async function pathWithoutBwrap(): Promise<string> {
  const bin = path.join(await tempDir(), 'bin');
  await mkdir(bin);
  for (const program of ['git', 'node', 'sh']) {
    const found = (process.env.PATH ?? '').split(':').map((d) => path.join(d, program)).find((p) => existsSync(p));
    if (found) await symlink(found, path.join(bin, program));
  }
  return bin;
}

async function env(extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const db = await isolatedDatabase();
  if (db) cleanups.push(() => db.drop());
  return { PATH: await pathWithoutBwrap(), TROUPE_MODEL_MAX_RETRIES: '0', ...(db ? { DATABASE_URL: db.url } : {}), ...extra };
}


describe('without bubblewrap', () => {
  it('refuses a bwrap project with 422 naming the package and the opt-out, creates nothing; mode none is accepted; PATCH to bwrap is refused', async () => {
    const dataDir = await tempDir();
    const p = troupe(['serve', '--port', '0', '--data-dir', dataDir], await env());
    cleanups.push(async () => {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
      await p.exit;
    });
    const url = await listening(p);
    const call = async (method: string, route: string, body?: unknown) => {
      const res = await fetch(`${url}${route}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string; details: { path: string }[] } } & Record<string, unknown> };
    };

    const refused = await call('POST', '/api/projects', { name: 'boxed', testCommand: 'node --test' });
    expect(refused.status).toBe(422);
    expect(refused.body.error!.code).toBe('sandbox_unavailable');
    expect(refused.body.error!.message).toMatch(/apt-get install bubblewrap/);
    expect(refused.body.error!.message).toMatch(/"sandbox": \{"mode": "none"\}/);
    expect(refused.body.error!.message).toMatch(/TROUPE_SANDBOX=none/);
    expect(refused.body.error!.details.map((d) => d.path)).toEqual(['config.sandbox.mode']);
    // No default workspace was made for it.
    expect(await readdir(path.join(dataDir, 'workspaces')).catch(() => [])).toEqual([]);
    const given = path.join(dataDir, 'given');
    expect((await call('POST', '/api/projects', { name: 'boxed', testCommand: 'node --test', workspace: given, config: { sandbox: { mode: 'bwrap' } } })).status).toBe(422);
    expect(existsSync(given)).toBe(false);
    expect((await call('GET', '/api/projects')).body).toMatchObject({ projects: [] });

    const open = await call('POST', '/api/projects', { name: 'open', testCommand: 'node --test', config: { sandbox: { mode: 'none' } } });
    expect(open.status).toBe(201);
    expect(open.body).toMatchObject({ config: { sandbox: { mode: 'none', network: false } } });
    const patched = await call('PATCH', `/api/projects/${open.body.id as string}`, { config: { sandbox: { mode: 'bwrap' } } });
    expect(patched.status).toBe(422);
    expect(patched.body.error!.details.map((d) => d.path)).toEqual(['config.sandbox.mode']);
    expect((await call('PATCH', `/api/projects/${open.body.id as string}`, { config: { sandbox: { network: true } } })).status).toBe(200);
  }, 120_000);

  it('troupe run refuses a plan that needs the sandbox (exit 2) and creates no workspace', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'plan.json'), JSON.stringify({ name: 'calc', testCommand: 'node --test', workspace: './calc', tasks: [], goal: 'nothing' }));
    const p = troupe(['run', 'plan.json'], await env({ ANTHROPIC_BASE_URL: 'http://127.0.0.1:9', ANTHROPIC_API_KEY: 'sk-none' }), dir);
    expect(await p.exit).toBe(2);
    expect(p.stderr()).toMatch(/apt-get install bubblewrap/);
    expect(p.stderr()).toMatch(/config\.sandbox\.mode/);
    expect(existsSync(path.join(dir, 'calc'))).toBe(false);
  }, 120_000);

  it('troupe demo runs unconfined and says so in one line', async () => {
    const p = troupe(['demo'], await env());
    expect(await p.exit).toBe(0);
    const out = p.stdout();
    expect(out.split('\n').filter((l) => l.includes('without the sandbox'))).toEqual(['Tests run without the sandbox: bubblewrap is not available here (apt-get install bubblewrap).']);
    expect(out).toMatch(/Run completed/);
    const workspace = /^Workspace: (.+)$/m.exec(out)![1]!;
    cleanups.push(() => rm(path.dirname(workspace), { recursive: true, force: true }));
  }, 120_000);
});
