/**
 * The bwrap sandbox, attacked for real: a node:test file in a task tree tries each escape the
 * contract rules out (other processes' environ, loopback network, writes outside the tree, reads
 * of hidden dirs, processes that outlive the run, a `kill -9` of the service) and reports. Every
 * escape must fail under `bwrap`; the same file under `none` shows the probes can succeed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTests, type TestRunResult, type TestSandbox } from '../../../src/actors/testing/run-tests.ts';
import { bwrapAvailable, prepareSandbox } from '../../../src/actors/testing/sandbox.ts';
import { waitFor } from './workspace.ts';

const SECRET = `troupe-fake-secret-${process.pid}-${Date.now()}`;
const node = process.execPath;

/** Each test passes when its escape WORKED; `report.json` says how. */
const PROBE = String.raw`
import test from 'node:test';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
const cfg = JSON.parse(fs.readFileSync('probe-config.json', 'utf8'));
const report = {};
const attempt = (name, fn) => test('escape: ' + name, async () => {
  try { report[name] = await fn(); } catch (e) { report[name] = 'refused: ' + e.code; }
  fs.writeFileSync('report.json', JSON.stringify(report));
  if (typeof report[name] !== 'string' || report[name].startsWith('refused')) throw new Error(report[name]);
});
attempt('environ', () => {
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try { if (fs.readFileSync('/proc/' + pid + '/environ', 'utf8').includes(cfg.secret)) return 'found in pid ' + pid; } catch {}
  }
  return 'refused: not found';
});
attempt('tcp', () => new Promise((resolve) => {
  const s = net.connect(cfg.port, '127.0.0.1', () => { s.end(); resolve('connected'); });
  s.on('error', (e) => resolve('refused: ' + e.code));
}));
for (const [name, dir] of Object.entries(cfg.writeInto)) {
  attempt('write ' + name, () => { fs.writeFileSync(path.join(dir, cfg.marker), 'escaped'); return 'written'; });
}
attempt('read hidden', () => fs.readFileSync(cfg.hiddenFile, 'utf8'));
attempt('detached child', () => {
  const child = spawn(process.execPath, ['heartbeat.cjs', 'detached.beat'], { detached: true, stdio: 'ignore' });
  child.unref();
  return 'started';
});
`;

/** Touches FILE every 100 ms forever (its pid first in FILE.pid, as the host sees it or not). */
const HEARTBEAT = `
const fs = require('node:fs');
const file = process.argv[2];
fs.writeFileSync(file + '.pid', String(process.pid));
let n = 0;
const beat = () => fs.writeFileSync(file, String(++n));
beat();
setInterval(beat, 100);
`;

let root: string;
let dataDir: string;
let tree: string;
let workspace: string;
let sentinel: ChildProcess;
let server: net.Server;
let port: number;
let connections = 0;
const marker = `troupe-escape-${process.pid}`;
const hiddenFile = () => path.join(dataDir, 'secret.txt');
const writeTargets = () => ({ parent: path.dirname(tree), home: os.homedir(), hidden: dataDir });

beforeAll(async () => {
  expect(await bwrapAvailable()).toBe(true);
  // The "service": a process whose environment holds a secret (a variable set later in this
  // process would not show in /proc/<pid>/environ, which is the env a process started with).
  process.env.TROUPE_FAKE_SECRET = SECRET;
  sentinel = spawn(node, ['-e', 'setInterval(() => {}, 1000)'], { env: { ...process.env }, stdio: 'ignore' });
  server = net.createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
  // The layout the service uses: worktrees and workspaces inside the (hidden) data dir.
  root = await mkdtemp(path.join(os.tmpdir(), 'troupe-sandbox-test-'));
  dataDir = path.join(root, 'data');
  workspace = path.join(dataDir, 'workspaces', 'prj');
  tree = path.join(dataDir, 'worktrees', 'prj', 'task');
  await mkdir(path.join(workspace, 'node_modules', 'dep'), { recursive: true });
  await writeFile(path.join(workspace, 'node_modules', 'dep', 'index.js'), 'module.exports = 42;\n');
  await mkdir(tree, { recursive: true });
  await symlink(path.join(workspace, 'node_modules'), path.join(tree, 'node_modules'), 'dir');
  await writeFile(hiddenFile(), 'data dir secret');
  await writeFile(path.join(tree, 'heartbeat.cjs'), HEARTBEAT);
});

afterAll(async () => {
  sentinel.kill('SIGKILL');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(path.join(os.homedir(), marker), { force: true });
  await rm(root, { recursive: true, force: true });
});

async function probe(sandbox: TestSandbox): Promise<{ result: TestRunResult; report: Record<string, string> }> {
  await rm(path.join(tree, 'report.json'), { force: true });
  const config = { secret: SECRET, port, marker, writeInto: writeTargets(), hiddenFile: hiddenFile() };
  await writeFile(path.join(tree, 'probe-config.json'), JSON.stringify(config));
  await writeFile(path.join(tree, 'escape.test.mjs'), PROBE);
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: os.homedir() };
  const result = await runTests({ argv: [node, '--test', 'escape.test.mjs'], cwd: tree, env, timeoutMs: 20_000, sandbox });
  const report = JSON.parse(await readFile(path.join(tree, 'report.json'), 'utf8')) as Record<string, string>;
  return { result, report };
}

/** Whether FILE has stopped changing (checked twice, 400 ms apart), within 5 s. */
async function stopsChanging(file: string): Promise<boolean> {
  const deadline = performance.now() + 5_000;
  const read = () => readFile(file, 'utf8').catch(() => '');
  const pause = () => new Promise((resolve) => setTimeout(resolve, 400));
  while (performance.now() < deadline) {
    const a = await read();
    await pause();
    const b = await read();
    await pause();
    if (a === b && b === (await read())) return true;
  }
  return false;
}

/** Whether FILE changes within a second (the heartbeat is alive). */
async function beating(file: string): Promise<boolean> {
  const first = await readFile(file, 'utf8').catch(() => '');
  const deadline = performance.now() + 1_000;
  while (performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    if ((await readFile(file, 'utf8').catch(() => '')) !== first) return true;
  }
  return false;
}

function removeEscapes(): Promise<unknown> {
  return Promise.all(Object.values(writeTargets()).map((dir) => rm(path.join(dir, marker), { force: true })));
}

describe('the bwrap sandbox', () => {
  it('stops every escape: environ, loopback TCP, writes outside the tree, hidden reads, processes outliving the run', async () => {
    const before = connections;
    const { result, report } = await probe({ mode: 'bwrap', network: false, hidePaths: [dataDir] });
    expect(result.sandbox).toBe('bwrap');
    expect(Object.keys(report).sort()).toEqual(['detached child', 'environ', 'read hidden', 'tcp', 'write hidden', 'write home', 'write parent']);
    for (const [name, outcome] of Object.entries(report)) {
      if (name === 'detached child') expect(outcome).toBe('started');
      else expect(outcome, name).toMatch(/^refused/);
    }
    expect(result).toMatchObject({ status: 'failed', failed: 6, passed: 1 });
    // Seen from outside, too.
    expect(connections).toBe(before);
    for (const dir of Object.values(writeTargets())) expect(existsSync(path.join(dir, marker)), dir).toBe(false);
    expect(await stopsChanging(path.join(tree, 'detached.beat'))).toBe(true);
  });

  it('the same probes succeed without it (mode none), so the test above can fail', async () => {
    const before = connections;
    const { result, report } = await probe({ mode: 'none', network: false, hidePaths: [dataDir] });
    try {
      expect(result.sandbox).toBe('none');
      expect(report.environ).toMatch(/^found in pid/);
      expect(report.tcp).toBe('connected');
      expect(connections).toBe(before + 1);
      for (const name of ['write parent', 'write home', 'write hidden']) expect(report[name], name).toBe('written');
      expect(report['read hidden']).toBe('data dir secret');
      // A child in its own session escapes the process-group kill: still beating after the run.
      expect(await beating(path.join(tree, 'detached.beat'))).toBe(true);
    } finally {
      const pid = Number(await readFile(path.join(tree, 'detached.beat.pid'), 'utf8').catch(() => '0'));
      if (pid > 0) process.kill(pid, 'SIGKILL');
      await removeEscapes();
    }
  });

  it('gives HOME and TMPDIR a private writable dir, removed after the run; the linked node_modules is readable, not writable', async () => {
    const script = `
const fs = require('node:fs');
const out = { home: process.env.HOME, tmpdir: process.env.TMPDIR, tmp: process.env.TMP, temp: process.env.TEMP };
fs.writeFileSync(process.env.HOME + '/written', 'x');
out.homeWritable = fs.readFileSync(process.env.HOME + '/written', 'utf8') === 'x';
out.dep = require('./node_modules/dep/index.js');
try { fs.writeFileSync('node_modules/dep/planted.js', 'x'); out.depWritable = true; } catch (e) { out.depWritable = e.code; }
try { fs.writeFileSync('.git', 'gitdir: /elsewhere'); out.gitWritable = true; } catch (e) { out.gitWritable = e.code; }
fs.writeFileSync('env.json', JSON.stringify(out));
`;
    await writeFile(path.join(tree, 'env.cjs'), script);
    await writeFile(path.join(tree, '.git'), `gitdir: ${path.join(workspace, '.git', 'worktrees', 'task')}\n`);
    try {
      const result = await runTests({ argv: [node, 'env.cjs'], cwd: tree, env: { PATH: '/usr/bin:/bin', HOME: os.homedir() }, timeoutMs: 20_000, sandbox: { mode: 'bwrap', network: false, hidePaths: [dataDir] } });
      expect(result, result.output).toMatchObject({ status: 'passed', sandbox: 'bwrap' });
      const seen = JSON.parse(await readFile(path.join(tree, 'env.json'), 'utf8')) as Record<string, unknown>;
      expect(seen.home).not.toBe(os.homedir());
      expect(seen).toMatchObject({ tmpdir: seen.home, tmp: seen.home, temp: seen.home, homeWritable: true, dep: 42, depWritable: 'EROFS', gitWritable: 'EROFS' });
      expect(existsSync(seen.home as string)).toBe(false);
    } finally {
      await rm(path.join(tree, '.git'), { force: true });
    }
  });

  it('lets the command reach the loopback when network is on', async () => {
    const before = connections;
    const { report } = await probe({ mode: 'bwrap', network: true, hidePaths: [dataDir] });
    expect(report.tcp).toBe('connected');
    expect(connections).toBe(before + 1);
    expect(report.environ).toMatch(/^refused/);
  });

  it('mounts the tree after a hidden dir around it, and hides a data dir inside the tree', async () => {
    const inner = path.join(tree, '.troupe');
    await mkdir(inner, { recursive: true });
    await writeFile(path.join(inner, 'db'), 'pglite');
    try {
      const { argv } = await using(prepareSandbox({ argv: ['true'], cwd: tree, env: {}, network: false, hidePaths: [dataDir, inner] }));
      const at = (flag: string, p: string) => argv.findIndex((a, i) => a === flag && argv[i + 1] === p);
      expect(at('--tmpfs', dataDir)).toBeGreaterThan(0);
      expect(at('--bind', tree)).toBeGreaterThan(at('--tmpfs', dataDir));
      expect(at('--tmpfs', inner)).toBeGreaterThan(at('--bind', tree));
      const result = await runTests({ argv: ['ls', '-A', '.troupe'], cwd: tree, env: { PATH: '/usr/bin:/bin' }, timeoutMs: 20_000, sandbox: { mode: 'bwrap', network: false, hidePaths: [dataDir, inner] } });
      expect(result).toMatchObject({ status: 'passed', output: '' });
    } finally {
      await rm(inner, { recursive: true, force: true });
    }
  });

  it('leaves nothing running after a kill -9 of the process that started the run', async () => {
    const beat = path.join(tree, `killed-${process.pid}.beat`);
    const runner = path.join(root, 'runner.mts');
    const runTestsUrl = new URL('../../../src/actors/testing/run-tests.ts', import.meta.url).href;
    await writeFile(
      runner,
      `import { runTests } from ${JSON.stringify(runTestsUrl)};
await runTests({ argv: [process.execPath, 'heartbeat.cjs', ${JSON.stringify(beat)}], cwd: ${JSON.stringify(tree)}, env: { PATH: '/usr/bin:/bin' }, timeoutMs: 600_000,
  sandbox: { mode: 'bwrap', network: false, hidePaths: [${JSON.stringify(dataDir)}] } });
`,
    );
    // Run from the repository so `--import tsx` resolves.
    // Its own TMPDIR: the private dir of a run whose service was killed is never removed.
    const tmp = path.join(root, 'runner-tmp');
    await mkdir(tmp);
    const service = spawn(node, ['--import', 'tsx', runner], { cwd: fileURLToPath(new URL('../../..', import.meta.url)), env: { ...process.env, TMPDIR: tmp }, stdio: 'ignore' });
    try {
      // Handshake: the sandboxed heartbeat has started.
      await waitFor('the sandboxed heartbeat', () => (existsSync(beat) ? true : undefined), 20_000);
      expect(await beating(beat)).toBe(true);
      service.kill('SIGKILL');
      expect(await stopsChanging(beat)).toBe(true);
      expect(await pgrep(beat)).toEqual([]);
    } finally {
      service.kill('SIGKILL');
    }
  });
});

/** The prepared sandbox, disposed right away (only its argv is looked at). */
async function using(p: Promise<Awaited<ReturnType<typeof prepareSandbox>>>) {
  const sandbox = await p;
  await sandbox.dispose();
  return sandbox;
}

/** Pids of processes whose command line contains `pattern`. */
function pgrep(pattern: string): Promise<string[]> {
  return new Promise((resolve) => {
    const child = spawn('pgrep', ['-f', pattern], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', () => resolve(out.split('\n').filter(Boolean)));
  });
}
