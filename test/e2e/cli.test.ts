/**
 * The real `troupe` executable as a child process: `serve` on a random port with the SDK
 * configured only through ANTHROPIC_* variables, a run driven over HTTP, graceful SIGTERM;
 * refusals and flag errors with exit code 2.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startScriptedModel, type ScriptedModel } from '../../src/scripted-model/server.ts';
import { listening, troupe } from '../support/cli.ts';
import { isolatedDatabase } from '../support/db.ts';
import { moduleWithTest } from '../support/replies.ts';
import { sse } from '../support/service.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});


async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'troupe-cli-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('troupe serve', () => {
  it('serves, runs a project with the SDK configured by ANTHROPIC_* variables, and exits 0 on SIGTERM', async () => {
    const model: ScriptedModel = await startScriptedModel((req) => moduleWithTest(req.taskKey!, 'ok'));
    cleanups.push(() => model.close());
    const db = await isolatedDatabase();
    if (db) cleanups.push(() => db.drop());
    const dataDir = await tempDir();
    const p = troupe(['serve', '--port', '0', '--data-dir', dataDir], {
      ANTHROPIC_BASE_URL: model.url,
      ANTHROPIC_API_KEY: 'sk-from-env',
      TROUPE_MODEL_MAX_RETRIES: '0',
      ...(db ? { DATABASE_URL: db.url } : {}),
    });
    cleanups.push(async () => {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
      await p.exit;
    });
    const url = await listening(p);
    expect(await (await fetch(`${url}/health`)).json()).toMatchObject({ status: 'ok', db: 'ok' });

    const call = async (method: string, route: string, body?: unknown) => {
      const res = await fetch(`${url}${route}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      return (await res.json()) as Record<string, unknown>;
    };
    const project = await call('POST', '/api/projects', { name: 'cli', testCommand: 'node --test' });
    expect(String(project.workspace).startsWith(dataDir)).toBe(true);
    await call('POST', `/api/projects/${project.id as string}/tasks`, { tasks: [{ key: 'a', title: 'A', description: '' }] });
    const stream = await sse(`${url}/api/projects/${project.id as string}/events`);
    await call('POST', `/api/projects/${project.id as string}/start`);
    await stream.until((m) => m.some((x) => x.event === 'run.completed'));
    stream.close();
    expect(model.requests[0]!.authorization ?? model.requests[0]!.apiKey).toMatch(/sk-from-env/);
    // Never log a secret.
    expect(p.stderr()).not.toContain('sk-from-env');

    p.child.kill('SIGTERM');
    expect(await p.exit).toBe(0);
    expect(p.stderr()).toContain('troupe stopped');
  });

  it('refuses a non-loopback host without TROUPE_API_TOKEN (exit 2)', async () => {
    const p = troupe(['serve', '--host', '0.0.0.0', '--port', '0', '--data-dir', await tempDir()], {});
    expect(await p.exit).toBe(2);
    expect(p.stderr()).toMatch(/TROUPE_API_TOKEN/);
  });

  it('rejects unknown flags and commands with a hint (exit 2); --help and --version answer (exit 0)', async () => {
    const flag = troupe(['serve', '--prot', '1'], {});
    expect(await flag.exit).toBe(2);
    expect(flag.stderr()).toMatch(/Unknown option '--prot'/);
    expect(flag.stderr()).toMatch(/Usage: troupe serve/);
    const command = troupe(['srve'], {});
    expect(await command.exit).toBe(2);
    expect(command.stderr()).toMatch(/unknown command 'srve'.*troupe --help/);
    const help = troupe(['serve', '--help'], {});
    expect(await help.exit).toBe(0);
    expect(help.stdout()).toMatch(/--inspect\[=PORT\]/);
    const version = troupe(['--version'], {});
    expect(await version.exit).toBe(0);
    expect(version.stdout().trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('troupe migrate', () => {
  it('applies the migrations and exits 0 (twice in a row: idempotent)', async () => {
    const db = await isolatedDatabase();
    if (db) cleanups.push(() => db.drop());
    const env: Record<string, string> = db ? { DATABASE_URL: db.url } : { TROUPE_DATA_DIR: await tempDir() };
    for (let i = 0; i < 2; i++) {
      const p = troupe(['migrate'], env);
      expect(await p.exit).toBe(0);
      expect(p.stdout()).toMatch(/migrations applied/);
    }
  });
});
