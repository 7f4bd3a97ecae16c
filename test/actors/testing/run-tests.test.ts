import { execFileSync } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { chmod, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runTests, type TestRunOptions } from '../../../src/actors/testing/run-tests.ts';
import { PROGRAMS, isAlive, makeWorkspace, readPid, removeWorkspaces, waitFor, waitForDeath } from './workspace.ts';

const node = process.execPath;

const PASSING = `import test from 'node:test';
test('adds', () => {});
test('subtracts', () => {});
test.skip('skipped', () => {});
test.todo('later');
`;

const FAILING = `import test from 'node:test';
import assert from 'node:assert/strict';
test('ok', () => {});
test('broken', () => { assert.equal(1 + 1, 3); });
`;

/** Processes a test deliberately left running (out of reach of runTests); killed afterwards. */
const strays: number[] = [];

afterEach(async () => {
  for (const pid of strays.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await removeWorkspaces();
});

function run(cwd: string, argv: readonly string[], extra: Partial<TestRunOptions> = {}) {
  return runTests({ argv, cwd, env: {}, timeoutMs: 20_000, ...extra });
}

describe('runTests with node --test', () => {
  it.each([
    ['default (TAP when piped)', []],
    ['tap', ['--test-reporter=tap']],
    ['spec', ['--test-reporter=spec']],
  ])('parses a passing suite with the %s reporter', async (_name, flags) => {
    const cwd = await makeWorkspace({ 'math.test.mjs': PASSING });
    const result = await run(cwd, [node, '--test', ...flags, 'math.test.mjs']);
    expect(result).toMatchObject({ status: 'passed', exitCode: 0, signal: null, passed: 2, failed: 0, skipped: 2, errors: 0 });
    expect(result.summary).toBe('2 passed, 2 skipped');
    expect(result.truncated).toBe(false);
    expect(result.outputBytes).toBe(Buffer.byteLength(result.output));
  });

  it('reports a failing suite', async () => {
    const cwd = await makeWorkspace({ 'math.test.mjs': FAILING });
    const result = await run(cwd, [node, '--test', 'math.test.mjs']);
    expect(result).toMatchObject({ status: 'failed', exitCode: 1, passed: 1, failed: 1, summary: '1 failed, 1 passed' });
    expect(result.output).toContain('broken');
  });

  it('finds no tests in a directory without test files (exit 0, "# tests 0")', async () => {
    const cwd = await makeWorkspace({ 'readme.txt': 'nothing here' });
    const result = await run(cwd, [node, '--test', cwd]);
    expect(result).toMatchObject({ status: 'no_tests', exitCode: 0, passed: 0, summary: 'no tests found' });
    expect(result.output).toContain('# tests 0');
  });

  it('finds no tests in a file that registers none (Node 20 counts the file as one passing test)', async () => {
    const cwd = await makeWorkspace({ 'empty.test.mjs': '// no tests yet\n' });
    for (const flags of [[], ['--test-reporter=spec']]) {
      const result = await run(cwd, [node, '--test', ...flags, 'empty.test.mjs']);
      expect(result).toMatchObject({ status: 'no_tests', exitCode: 0, passed: 0 });
    }
  });

  it('treats a test path that does not exist as no tests (exit 1, "Could not find")', async () => {
    const cwd = await makeWorkspace();
    const result = await run(cwd, [node, '--test', 'missing.test.mjs']);
    expect(result).toMatchObject({ status: 'no_tests', exitCode: 1 });
    expect(result.output).toMatch(/^Could not find '.*missing\.test\.mjs'/);
  });
});

describe('runTests: the exit code decides', () => {
  it('fails on exit 1 even when the output claims "# fail 0"', async () => {
    const cwd = await makeWorkspace();
    const script = "console.log('# tests 3\\n# pass 3\\n# fail 0'); process.exitCode = 1;";
    const result = await run(cwd, [node, '-e', script]);
    expect(result).toMatchObject({ status: 'failed', exitCode: 1, passed: 3, failed: 0, summary: 'exit code 1 (3 passed)' });
  });

  it('passes on exit 0 even when the output claims a failure', async () => {
    const cwd = await makeWorkspace();
    const result = await run(cwd, [node, '-e', "console.log('# tests 2\\n# pass 1\\n# fail 1')"]);
    expect(result).toMatchObject({ status: 'passed', exitCode: 0, failed: 1 });
  });

  it('calls a death by a signal it did not send an error', async () => {
    const cwd = await makeWorkspace();
    const result = await run(cwd, [node, '-e', "process.kill(process.pid, 'SIGSEGV')"]);
    expect(result).toMatchObject({ status: 'error', exitCode: null, signal: 'SIGSEGV', summary: 'killed by signal SIGSEGV' });
  });
});

describe('runTests: timeouts and stray processes', () => {
  it('times out a hanging command and kills it', async () => {
    const cwd = await makeWorkspace();
    const pidFile = join(cwd, 'pid');
    const script = "require('node:fs').writeFileSync(process.argv[1], String(process.pid)); setInterval(() => {}, 1000);";
    const result = await run(cwd, [node, '-e', script, pidFile], { timeoutMs: 300 });
    expect(result).toMatchObject({ status: 'timeout', exitCode: null, signal: 'SIGTERM', summary: 'timed out after 300 ms' });
    const pid = await readPid(pidFile);
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it('resolves promptly after a timeout even when a grandchild ignores SIGTERM and holds stdout', async () => {
    const cwd = await makeWorkspace(PROGRAMS);
    const pidFile = join(cwd, 'pid');
    const result = await run(cwd, [node, 'parent.cjs', pidFile, 'hang'], { timeoutMs: 1_500 });
    // Proves the grandchild had installed its SIGTERM handler before the timeout fired.
    expect(result.output).toContain('grandchild ready');
    expect(result).toMatchObject({ status: 'timeout', signal: 'SIGTERM' });
    // The parent died of SIGTERM; the grandchild fell to the group SIGKILL sent on the parent's exit.
    expect(result.durationMs).toBeLessThan(1_500 + 800);
    await waitForDeath(await readPid(pidFile));
  });

  it('escalates to SIGKILL after the grace period when the command ignores SIGTERM', async () => {
    const cwd = await makeWorkspace(PROGRAMS);
    const pidFile = join(cwd, 'pid');
    const result = await run(cwd, [node, 'parent.cjs', pidFile, 'hang-ignore-term'], { timeoutMs: 1_000 });
    expect(result.output).toContain('grandchild ready');
    expect(result).toMatchObject({ status: 'timeout', signal: 'SIGKILL' });
    expect(result.durationMs).toBeGreaterThanOrEqual(1_900);
    expect(result.durationMs).toBeLessThan(3_500);
    await waitForDeath(await readPid(pidFile));
  });

  it('kills a background grandchild left behind by a command that exits', async () => {
    const cwd = await makeWorkspace(PROGRAMS);
    const pidFile = join(cwd, 'pid');
    const result = await run(cwd, [node, 'parent.cjs', pidFile, 'exit']);
    expect(result).toMatchObject({ status: 'passed', exitCode: 0 });
    expect(result.output).toContain('grandchild ready');
    await waitForDeath(await readPid(pidFile));
  });

  it('does not wait for a grandchild outside the process group that holds stdout open', async () => {
    const cwd = await makeWorkspace(PROGRAMS);
    const pidFile = join(cwd, 'pid');
    const started = performance.now();
    const result = await run(cwd, [node, 'parent.cjs', pidFile, 'escape']);
    const grandchild = await readPid(pidFile);
    strays.push(grandchild);
    expect(result).toMatchObject({ status: 'passed', exitCode: 0 });
    expect(result.output).toContain('grandchild ready');
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(isAlive(grandchild)).toBe(true);
  });
});

describe('runTests: output', () => {
  it('keeps memory and output bounded when a command floods 50 MB', async () => {
    const cwd = await makeWorkspace();
    // 50 chunks of 1 MiB: the first all 'H', the last all 'T', the rest 'x'; respects backpressure.
    const script = `
      const chunks = 50; let i = 0;
      const next = () => {
        while (i < chunks) {
          const fill = i === 0 ? 'H' : i === chunks - 1 ? 'T' : 'x';
          i++;
          if (!process.stdout.write(Buffer.alloc(1 << 20, fill))) return process.stdout.once('drain', next);
        }
      };
      next();`;
    const maxOutputBytes = 64 * 1024;
    const result = await run(cwd, [node, '-e', script], { maxOutputBytes });
    const total = 50 * (1 << 20);
    expect(result).toMatchObject({ status: 'passed', truncated: true, outputBytes: total });
    const marker = `\n… [${total - maxOutputBytes} bytes omitted] …\n`;
    expect(result.output).toBe('H'.repeat(maxOutputBytes / 2) + marker + 'T'.repeat(maxOutputBytes / 2));
  });

  it('uses the 256 KiB default cap', async () => {
    const cwd = await makeWorkspace();
    const result = await run(cwd, [node, '-e', "process.stdout.write('y'.repeat(300 * 1024))"]);
    expect(result.truncated).toBe(true);
    expect(result.output.replace(/\n… \[\d+ bytes omitted\] …\n/, '')).toHaveLength(256 * 1024);
  });

  it('decodes invalid UTF-8 with replacement characters instead of throwing', async () => {
    const cwd = await makeWorkspace();
    const result = await run(cwd, [node, '-e', 'process.stdout.write(Buffer.from([0xff, 0xfe, 0x41]))']);
    expect(result.status).toBe('passed');
    expect(result.output).toContain('\uFFFD');
    expect(result.output).toContain('A');
    expect(result.outputBytes).toBe(3);
  });

  it('captures stdout and stderr into one output', async () => {
    const cwd = await makeWorkspace();
    // Two pipes read by one event loop: arrival order between them is not guaranteed, so sort.
    const script = "const fs = require('node:fs'); fs.writeSync(1, 'one\\n'); fs.writeSync(2, 'two\\n'); fs.writeSync(1, 'three\\n');";
    const result = await run(cwd, [node, '-e', script]);
    expect(result.output.split('\n').filter(Boolean).sort()).toEqual(['one', 'three', 'two']);
  });
});

describe('runTests: environment', () => {
  it('gives the child exactly opts.env, nothing from process.env', async () => {
    const cwd = await makeWorkspace();
    process.env.TROUPE_RUN_TESTS_LEAK = 'secret';
    try {
      const result = await run(cwd, [node, '-e', 'console.log(JSON.stringify(process.env))'], { env: { ONLY_THIS: '1' } });
      expect(JSON.parse(result.output)).toEqual({ ONLY_THIS: '1' });
    } finally {
      delete process.env.TROUPE_RUN_TESTS_LEAK;
    }
  });
});

describe('runTests: commands that cannot start', () => {
  it('reports a missing program without rejecting', async () => {
    const cwd = await makeWorkspace();
    const result = await run(cwd, ['troupe-no-such-program', '--flag']);
    expect(result).toMatchObject({ status: 'error', exitCode: null, signal: null, summary: 'command not found: troupe-no-such-program' });
  });

  it('reports a program that is not executable', async () => {
    const cwd = await makeWorkspace({ 'run.sh': '#!/bin/sh\nexit 0\n' });
    await chmod(join(cwd, 'run.sh'), 0o644);
    const result = await run(cwd, [join(cwd, 'run.sh')]);
    expect(result).toMatchObject({ status: 'error', summary: `permission denied: ${join(cwd, 'run.sh')}` });
  });

  it('reports a missing working directory', async () => {
    const cwd = join(await makeWorkspace(), 'gone');
    const result = await run(cwd, [node, '--version']);
    expect(result).toMatchObject({ status: 'error', exitCode: null, summary: `working directory missing: ${cwd}` });
  });

  it('reports an empty argv', async () => {
    const result = await run(await makeWorkspace(), []);
    expect(result).toMatchObject({ status: 'error', summary: 'empty test command' });
  });
});

describe('runTests: abort', () => {
  it('rejects without spawning when the signal is already aborted', async () => {
    const cwd = await makeWorkspace();
    const marker = join(cwd, 'ran');
    const signal = AbortSignal.abort();
    await expect(run(cwd, [node, '-e', `require('node:fs').writeFileSync(${JSON.stringify(marker)}, '')`], { signal })).rejects.toMatchObject({ name: 'AbortError' });
    await expect(readFile(marker)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('kills the process group and rejects promptly when aborted mid-run', async () => {
    const cwd = await makeWorkspace(PROGRAMS);
    const pidFile = join(cwd, 'pid');
    const controller = new AbortController();
    const outcome = run(cwd, [node, 'parent.cjs', pidFile, 'hang'], { signal: controller.signal }).then(
      () => 'resolved',
      (err: unknown) => err,
    );
    const grandchild = await readPid(pidFile);
    const parent = Number(await readFile(`${pidFile}.parent`, 'utf8'));
    const reason = new Error('stop now');
    const abortedAt = performance.now();
    controller.abort(reason);
    expect(await outcome).toBe(reason);
    expect(performance.now() - abortedAt).toBeLessThan(1_000);
    expect(() => process.kill(parent, 0)).toThrow();
    await waitForDeath(grandchild);
  });

  it('removes its abort listener once the run settles', async () => {
    const cwd = await makeWorkspace();
    const controller = new AbortController();
    const result = await run(cwd, [node, '-e', 'setInterval(() => {}, 1000)'], { timeoutMs: 200, signal: controller.signal });
    expect(result.status).toBe('timeout');
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});

describe('runTests under bwrap', () => {
  const bwrap = { sandbox: { mode: 'bwrap', network: false } } as const;

  /** Pids of host processes whose command line mentions `file` (pids inside the sandbox differ). */
  function holding(file: string): number[] {
    try {
      return execFileSync('pgrep', ['-f', file], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    } catch {
      return []; // pgrep exits 1 when nothing matches
    }
  }
  const noneLeft = (file: string) => waitFor(`processes of ${file} to die`, () => (holding(file).length === 0 ? true : undefined), 2_000);

  it('reports a program missing inside the sandbox as "command not found"', async () => {
    const cwd = await makeWorkspace();
    const result = await run(cwd, ['troupe-no-such-program', '--flag'], bwrap);
    expect(result).toMatchObject({ status: 'error', sandbox: 'bwrap', exitCode: null, summary: 'command not found: troupe-no-such-program' });
  });

  it('reports a program that is not executable', async () => {
    const cwd = await makeWorkspace({ 'run.sh': '#!/bin/sh\nexit 0\n' });
    await chmod(join(cwd, 'run.sh'), 0o644);
    const result = await run(cwd, [join(cwd, 'run.sh')], bwrap);
    expect(result).toMatchObject({ status: 'error', sandbox: 'bwrap', summary: `permission denied: ${join(cwd, 'run.sh')}` });
  });

  it('calls a death by a signal an error (bwrap reports it as exit code 128 + N)', async () => {
    const cwd = await makeWorkspace();
    const result = await run(cwd, [node, '-e', "process.kill(process.pid, 'SIGSEGV')"], bwrap);
    expect(result).toMatchObject({ status: 'error', sandbox: 'bwrap', exitCode: null, signal: 'SIGSEGV', summary: 'killed by signal SIGSEGV' });
  });

  it('runs a passing suite and says it was sandboxed', async () => {
    const cwd = await makeWorkspace({ 'math.test.mjs': PASSING });
    const result = await run(cwd, [node, '--test', 'math.test.mjs'], bwrap);
    expect(result).toMatchObject({ status: 'passed', sandbox: 'bwrap', passed: 2, summary: '2 passed, 2 skipped' });
  });

  it('kills everything in the sandbox on a timeout, even a command that ignores SIGTERM', async () => {
    const cwd = await makeWorkspace(PROGRAMS);
    const pidFile = join(cwd, 'pid');
    const result = await run(cwd, [node, 'parent.cjs', pidFile, 'hang-ignore-term'], { ...bwrap, timeoutMs: 1_000 });
    expect(result.output).toContain('grandchild ready');
    expect(result).toMatchObject({ status: 'timeout', sandbox: 'bwrap', summary: 'timed out after 1000 ms' });
    await noneLeft(pidFile);
  });

  it('kills a grandchild that left the process group once the command exits', async () => {
    const cwd = await makeWorkspace(PROGRAMS);
    const pidFile = join(cwd, 'pid');
    const result = await run(cwd, [node, 'parent.cjs', pidFile, 'escape'], bwrap);
    expect(result).toMatchObject({ status: 'passed', sandbox: 'bwrap' });
    expect(result.output).toContain('grandchild ready');
    await noneLeft(pidFile);
  });

  it('kills everything and rejects promptly when aborted mid-run', async () => {
    const cwd = await makeWorkspace(PROGRAMS);
    const pidFile = join(cwd, 'pid');
    const controller = new AbortController();
    const outcome = run(cwd, [node, 'parent.cjs', pidFile, 'hang'], { ...bwrap, signal: controller.signal }).then(
      () => 'resolved',
      (err: unknown) => err,
    );
    await readPid(pidFile);
    expect(holding(pidFile).length).toBeGreaterThan(0);
    const reason = new Error('stop now');
    controller.abort(reason);
    expect(await outcome).toBe(reason);
    await noneLeft(pidFile);
  });
});
