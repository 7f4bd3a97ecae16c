/**
 * Bad input answers fast: the latency of each kind of refused request over real HTTP on loopback
 * (the service's own app on an ephemeral port), side by side with `GET /health` in the same run,
 * and `troupe run` of a plan with an unknown dependency as a child process side by side with
 * `troupe --help` (both pay the CLI's start; the difference is what the refusal costs).
 * Target (issue 12): every 4xx within 100 ms on an idle machine.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '@hono/node-server';
import { createApp } from '../src/http/app.ts';
import { silentLogger } from '../src/logger.ts';
import { benchClient, benchModel, benchRuntime, openStore, round, type DbKind } from './harness.ts';

export interface BadInputCase {
  kind: string;
  status: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface BadInputResult {
  db: DbKind;
  rounds: number;
  healthP50Ms: number;
  cases: BadInputCase[];
  /** Wall time of `troupe run` refusing a plan with an unknown dependency, and of `troupe --help`. */
  cli: { refusedMs: number; helpMs: number } | null;
}

const BIN = fileURLToPath(new URL('../bin/troupe.js', import.meta.url));

export async function badInput(db: DbKind, rounds: number, withCli: boolean): Promise<BadInputResult> {
  const opened = await openStore(db);
  const { store } = opened;
  const model = await benchModel(0);
  const b = await benchRuntime(store, benchClient(model));
  const { app } = createApp({ runtime: b.runtime, bus: b.bus, logger: silentLogger, version: 'bench' });
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'troupe-bench-bad-'));
  try {
    const plain = path.join(scratch, 'plain');
    await mkdir(plain);
    const project = (await (await post(base, '/api/projects', { name: 'bench', testCommand: 'node --test' })).json()) as { id: string };
    const json = (method: string, route: string, body: unknown) => () => send(base, method, route, JSON.stringify(body));
    const kinds: { kind: string; call: () => Promise<Response> }[] = [
      { kind: 'malformed JSON', call: () => send(base, 'POST', '/api/projects', '{"name":') },
      { kind: 'unknown field', call: json('POST', '/api/projects', { name: 'x', testCommand: 'node --test', colour: 'red' }) },
      { kind: 'NUL in a value', call: json('POST', '/api/projects', { name: 'x\u0000', testCommand: 'node --test' }) },
      { kind: 'workspace does not exist', call: json('POST', '/api/projects', { name: 'x', testCommand: 'node --test', workspace: path.join(scratch, 'typo') }) },
      { kind: 'test command not found', call: json('POST', '/api/projects', { name: 'x', testCommand: 'no-such-runner', workspace: plain }) },
      { kind: 'worktree without git', call: json('POST', '/api/projects', { name: 'x', testCommand: 'node --test', workspace: plain, config: { isolation: 'worktree' } }) },
      { kind: 'patch: test command not found', call: json('PATCH', `/api/projects/${project.id}`, { testCommand: 'no-such-runner' }) },
      { kind: 'tasks: unknown dependency', call: json('POST', `/api/projects/${project.id}/tasks`, { tasks: [{ key: 'a', title: 'A', description: '', dependsOn: ['ghost'] }] }) },
      {
        kind: 'tasks: cycle',
        call: json('POST', `/api/projects/${project.id}/tasks`, {
          tasks: [
            { key: 'a', title: 'A', description: '', dependsOn: ['b'] },
            { key: 'b', title: 'B', description: '', dependsOn: ['a'] },
          ],
        }),
      },
      { kind: 'start: nothing to do', call: () => send(base, 'POST', `/api/projects/${project.id}/start`, undefined) },
      { kind: 'pause: no run', call: () => send(base, 'POST', `/api/projects/${project.id}/pause`, undefined) },
      { kind: 'unknown project', call: () => send(base, 'GET', '/api/projects/prj_missing', undefined) },
    ];
    const health = await timed(() => send(base, 'GET', '/health', undefined), rounds);
    const cases: BadInputCase[] = [];
    for (const k of kinds) {
      const r = await timed(k.call, rounds);
      if (r.status < 400 || r.status >= 500) throw new Error(`${k.kind}: expected a 4xx, got ${r.status}`);
      cases.push({ kind: k.kind, status: r.status, p50Ms: r.p50, p99Ms: r.p99, maxMs: r.max });
    }
    const cli = withCli ? await cliFigures(scratch) : null;
    return { db, rounds, healthP50Ms: health.p50, cases, cli };
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await b.close();
    await model.close();
    await opened.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

function send(base: string, method: string, route: string, body: string | undefined): Promise<Response> {
  return fetch(`${base}${route}`, { method, body, headers: body === undefined ? {} : { 'content-type': 'application/json' } });
}

function post(base: string, route: string, body: unknown): Promise<Response> {
  return send(base, 'POST', route, JSON.stringify(body));
}

/** Three warm-up calls, then `rounds` timed ones in turn; percentiles of the timed ones. */
async function timed(call: () => Promise<Response>, rounds: number): Promise<{ status: number; p50: number; p99: number; max: number }> {
  let status = 0;
  for (let i = 0; i < 3; i++) await (await call()).arrayBuffer();
  const ms: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const started = performance.now();
    const res = await call();
    await res.arrayBuffer();
    ms.push(performance.now() - started);
    status = res.status;
  }
  ms.sort((a, b) => a - b);
  const at = (q: number) => round(ms[Math.min(ms.length - 1, Math.ceil(q * ms.length) - 1)]!, 1);
  return { status, p50: at(0.5), p99: at(0.99), max: round(ms.at(-1)!, 1) };
}

async function cliFigures(scratch: string): Promise<{ refusedMs: number; helpMs: number }> {
  const plan = path.join(scratch, 'plan.json');
  await writeFile(plan, JSON.stringify({ name: 'x', testCommand: 'node --test', tasks: [{ key: 'a', title: 'A', description: '', dependsOn: ['ghost'] }] }));
  const wall = async (args: string[], expectCode: number) => {
    const started = performance.now();
    const code = await new Promise<number>((resolve) => {
      execFile(process.execPath, [BIN, ...args], { cwd: scratch }, (error) => resolve(error ? Number((error as { code?: number }).code ?? 1) : 0));
    });
    if (code !== expectCode) throw new Error(`troupe ${args.join(' ')}: exit ${code}, expected ${expectCode}`);
    return performance.now() - started;
  };
  await wall(['--help'], 0);
  return { refusedMs: round(await wall(['run', plan], 2), 0), helpMs: round(await wall(['--help'], 0), 0) };
}
