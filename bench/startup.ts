/**
 * Start-up: how long a person waits. `troupe --help`, and `troupe serve` until its first `/health`
 * answers 200 on a new data dir (PGlite created and migrated) and on an existing one (opened, the
 * migrations already applied), each as a child process beside `node -e 0` (the floor: Node's own
 * start) in the same run, alternating, median of `rounds`. Targets (issue 14): `--help` ≤ 0.5 s,
 * `/health` on an existing data dir ≤ 1.5 s. It measures the compiled CLI (`dist/src`, which
 * `npm run bench` brings up to date first) and refuses to run on a stale build, where
 * `bin/troupe.js` would run the sources through tsx instead. The machine's load average when it
 * started goes into the figures: on 2 cores, a busy neighbour moves them by a factor.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildIsFresh } from '../bin/build-state.js';
import { round } from './harness.ts';

const BIN = fileURLToPath(new URL('../bin/troupe.js', import.meta.url));

export interface StartupResult {
  rounds: number;
  nodeMs: number;
  helpMs: number;
  healthNewMs: number;
  healthExistingMs: number;
  /** `os.loadavg()[0]` when the measurement started. */
  loadAverage: number;
}

export async function startup(rounds: number): Promise<StartupResult> {
  if (!buildIsFresh()) throw new Error('dist/src is missing or older than src/: run `npm run build:src` (npm run bench does) so the compiled start is measured');
  const loadAverage = round(os.loadavg()[0]!, 2);
  await warmFetch();
  const node: number[] = [];
  const help: number[] = [];
  const fresh: number[] = [];
  const existing: number[] = [];
  const dirs: string[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      node.push(await exits(['-e', '0']));
      help.push(await exits([BIN, '--help']));
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'troupe-bench-start-'));
      dirs.push(dataDir);
      fresh.push(await firstHealth(dataDir));
      existing.push(await firstHealth(dataDir));
    }
  } finally {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }
  return { rounds, nodeMs: median(node), helpMs: median(help), healthNewMs: median(fresh), healthExistingMs: median(existing), loadAverage };
}

/** This process's first `fetch` sets up undici (tens of ms): done here, not inside the first timing. */
async function warmFetch(): Promise<void> {
  const server = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await (await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)).text();
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

/** Wall time of `node <args>` until it exits 0. */
function exits(args: string[]): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`node ${args.join(' ')} exited ${code}`))));
  });
}

/**
 * Wall time from spawning `troupe serve` on `dataDir` (port 0, PGlite) to the first 200 of
 * `/health`, polled every 10 ms once the "listening" line gave the URL; then a clean SIGTERM.
 */
function firstHealth(dataDir: string): Promise<number> {
  const started = performance.now();
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: os.homedir(), TROUPE_SANDBOX: 'none' };
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--data-dir', dataDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise<number>((resolve, reject) => {
    let buffered = '';
    let found = false;
    let answeredMs: number | null = null;
    child.once('error', reject);
    // It ends either after our SIGTERM (answered) or by itself (a failure to report).
    child.once('exit', (code) => (answeredMs !== null ? resolve(answeredMs) : reject(new Error(`troupe serve exited ${code} before /health answered`))));
    const answered = (ms: number) => {
      answeredMs = ms;
      child.kill('SIGTERM');
    };
    // The logs (JSON lines) go to stderr; the "troupe listening" line carries the URL.
    child.stderr.on('data', (chunk: Buffer) => {
      if (found) return;
      buffered += chunk.toString('utf8');
      const url = /"url":"(http:\/\/[^"]+)"/.exec(buffered)?.[1];
      if (!url) return;
      found = true;
      const poll = () => {
        fetch(`${url}/health`)
          .then((res) => (res.status === 200 ? answered(performance.now() - started) : setTimeout(poll, 10)))
          .catch(() => setTimeout(poll, 10));
      };
      poll();
    });
    child.stdout.resume();
  });
}

function median(ms: number[]): number {
  const sorted = [...ms].sort((a, b) => a - b);
  return round(sorted[Math.floor(sorted.length / 2)]!, 0);
}
