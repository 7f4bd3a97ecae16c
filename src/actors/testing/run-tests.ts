/**
 * The "tests" effect: runs a project's test command as a child process (never through a shell),
 * keeps a bounded copy of its output and turns the outcome into a `TestRunResult`.
 *
 * A failing suite is output data, not a fault: this resolves for every way the command can end —
 * passed, failed, timed out, could not start — and rejects only when the caller aborts.
 */
import { stat } from 'node:fs/promises';
import { coerceError } from '../../errors.ts';
import type { TestStatus } from '../../machines/types.ts';
import { storableText } from '../../safe-text.ts';
import { CappedOutput } from './capped-output.ts';
import { parseTestSummary, type TestCounts, type TestFailure } from './parse-summary.ts';
import { prepareSandbox, sandboxExit, sandboxStartFailure, type PreparedSandbox } from './sandbox.ts';
import { spawnDetached, type SpawnedProcess } from './spawner.ts';

/** How a test run ended (`error`: the command could not start or died of a signal we did not send): the machines' vocabulary. */
export type { TestStatus };

/** What to run and how. */
export interface TestRunOptions {
  /** Non-empty; `argv[0]` is the program. Never run through a shell. */
  argv: readonly string[];
  cwd: string;
  /** The child's entire environment, already allowlisted by the caller; `process.env` is not merged. */
  env: Record<string, string>;
  timeoutMs: number;
  /** Abort kills the whole process group and rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Output kept, head and tail, cut from the middle. Default 256 KiB. */
  maxOutputBytes?: number;
  /** How to confine the command (default: not at all, `mode: 'none'`). */
  sandbox?: TestSandbox;
}

/** The confinement of one test run (README "Security model"). */
export interface TestSandbox {
  mode: 'bwrap' | 'none';
  /** Network inside the sandbox (`bwrap` only; off by default). */
  network: boolean;
  /** Directories the command must not see at all, e.g. the service's data dir (the task's tree inside it stays visible). */
  hidePaths?: readonly string[];
}

/** The outcome of one run. The exit code decides pass/fail; the counts are what the runner printed. */
export interface TestRunResult {
  status: TestStatus;
  /** The counts the runner printed; null when its output was not understood (never a made-up 0). */
  passed: number | null;
  failed: number | null;
  errors: number | null;
  skipped: number | null;
  total: number | null;
  /** Failing tests the output names (name and first assertion line), at most 50. */
  failures: TestFailure[];
  exitCode: number | null;
  /** Terminating signal name, if any. */
  signal: string | null;
  durationMs: number;
  /**
   * stdout and stderr interleaved as they arrived, capped, decoded as UTF-8 (invalid bytes →
   * U+FFFD), NUL shown as U+2400: it is stored (Postgres refuses NUL) and quoted to the model.
   */
  output: string;
  /** Total bytes the command produced, kept or not. */
  outputBytes: number;
  truncated: boolean;
  /** How the command was confined. */
  sandbox: 'bwrap' | 'none';
  /** One short human line: "2 failed, 10 passed", "timed out after 300000 ms", "command not found: pytest". */
  summary: string;
}

const DEFAULT_MAX_OUTPUT_BYTES = 256 * 1024;
/** Between SIGTERM and SIGKILL on timeout: long enough for a runner to print its partial report. */
const KILL_GRACE_MS = 1_000;
/** After the main child exits, how long to wait for pipes held open by escaped grandchildren. */
const DRAIN_MS = 300;
/** setTimeout's ceiling; larger (or non-finite) delays fire immediately instead of never. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Runs `opts.argv` in its own process group and resolves with the outcome. Rejects only on abort
 * (with `signal.reason`); by then the process group has been sent SIGKILL.
 */
export async function runTests(opts: TestRunOptions): Promise<TestRunResult> {
  const { signal } = opts;
  if (signal?.aborted) throw abortReason(signal);
  const started = performance.now();
  const program = opts.argv[0];
  if (program === undefined || program === '') return startFailure('empty test command', started);
  // spawn reports a missing cwd as ENOENT, indistinguishable from a missing program; look first.
  const cwdProblem = await checkCwd(opts.cwd);
  if (signal?.aborted) throw abortReason(signal);
  if (cwdProblem !== null) return startFailure(cwdProblem, started);
  if (opts.sandbox?.mode !== 'bwrap') return supervise(opts, { argv: opts.argv, env: opts.env, sandbox: 'none' }, program, started);
  let sandbox: PreparedSandbox;
  try {
    sandbox = await prepareSandbox({ argv: opts.argv, cwd: opts.cwd, env: opts.env, network: opts.sandbox.network, hidePaths: opts.sandbox.hidePaths ?? [] });
  } catch (thrown) {
    return startFailure(`cannot prepare the sandbox: ${coerceError(thrown).message}`, started, 'bwrap');
  }
  try {
    if (signal?.aborted) throw abortReason(signal);
    return await supervise(opts, { argv: sandbox.argv, env: sandbox.env, sandbox: 'bwrap' }, program, started);
  } finally {
    await sandbox.dispose();
  }
}

/** What is actually spawned: the test command itself, or bwrap wrapped around it. */
interface Launch {
  argv: readonly string[];
  env: Record<string, string>;
  sandbox: TestRunResult['sandbox'];
}

function supervise(opts: TestRunOptions, launch: Launch, program: string, started: number): Promise<TestRunResult> {
  return new Promise<TestRunResult>((resolve, reject) => {
    const { signal } = opts;
    const { sandbox } = launch;
    let child: SpawnedProcess;
    try {
      // Under bwrap, killing its group kills the namespace's init and with it every process inside.
      // Its own process group, so one kill reaches every grandchild the runner starts; started
      // by the helper process (see spawner.ts), never through a shell.
      child = spawnDetached({ file: launch.argv[0] ?? program, args: launch.argv.slice(1), cwd: opts.cwd, env: launch.env });
    } catch (thrown) {
      // Invalid arguments (e.g. a NUL byte in argv) throw synchronously instead of emitting 'error'.
      resolve(startFailure(describeStartError(coerceError(thrown), program), started, sandbox));
      return;
    }

    const output = new CappedOutput(opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES);
    let settled = false;
    let timedOut = false;
    let exit: Exit | undefined;
    let startError: Error | undefined;
    let aborted: { reason: unknown } | undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    let drainTimer: NodeJS.Timeout | undefined;

    const killGroup = (sig: NodeJS.Signals): void => child.killGroup(sig);

    const settle = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timeoutTimer);
      clearTimeout(graceTimer);
      clearTimeout(drainTimer);
      signal?.removeEventListener('abort', onAbort);
      // A grandchild outside the group may still hold the pipes; stop reading rather than wait.
      child.stdout?.destroy();
      child.stderr?.destroy();
      // The raw reason, as `signal.throwIfAborted()` and fetch do; it is an AbortError by default.
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      if (aborted !== undefined) reject(aborted.reason);
      else if (startError !== undefined) resolve(startFailure(describeStartError(startError, launch.argv[0] ?? program), started, sandbox));
      else resolve(buildResult({ exit: exit ?? { code: null, signal: null }, timedOut, output, started, timeoutMs: opts.timeoutMs, sandbox }));
    };

    const waitForDrain = (): void => {
      clearTimeout(drainTimer);
      drainTimer = setTimeout(settle, DRAIN_MS);
    };

    const onTimeout = (): void => {
      if (exit !== undefined || aborted !== undefined) return;
      timedOut = true;
      killGroup('SIGTERM');
      graceTimer = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
      graceTimer.unref();
    };
    const timeoutTimer = setTimeout(onTimeout, clampDelay(opts.timeoutMs));

    const onAbort = (): void => {
      if (settled || signal === undefined) return;
      aborted = { reason: abortReason(signal) };
      killGroup('SIGKILL');
      // Reject once the leader is reaped (SIGKILL cannot be caught, so that is quick), so the
      // caller never hears of the abort while the process still exists; cap the wait regardless.
      if (exit !== undefined) settle();
      else waitForDrain();
    };

    signal?.addEventListener('abort', onAbort, { once: true });

    const onData = (chunk: Buffer): void => output.push(chunk);
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    // Reading a pipe we destroy ourselves can error; the output we have is all we need.
    child.stdout?.on('error', () => undefined);
    child.stderr?.on('error', () => undefined);

    child.on('error', (err) => {
      // Without a pid the program never started (ENOENT, EACCES); 'close' follows and settles.
      // After a successful spawn, 'error' only reports failed kill/send calls, which we don't make.
      if (child.pid === undefined) startError = err;
    });

    child.on('exit', (code, sig) => {
      exit = { code, signal: sig };
      // Background grandchildren (servers, watchers) must not outlive the run.
      killGroup('SIGKILL');
      if (aborted !== undefined) settle();
      else waitForDrain();
    });

    child.on('close', settle);
  });
}

function abortReason(signal: AbortSignal): unknown {
  const reason: unknown = signal.reason;
  return reason ?? new DOMException('This operation was aborted', 'AbortError');
}

function clampDelay(ms: number): number {
  return Number.isFinite(ms) ? Math.min(Math.max(0, ms), MAX_TIMER_MS) : MAX_TIMER_MS;
}

async function checkCwd(cwd: string): Promise<string | null> {
  try {
    const info = await stat(cwd);
    return info.isDirectory() ? null : `working directory is not a directory: ${cwd}`;
  } catch (thrown) {
    const err: NodeJS.ErrnoException = coerceError(thrown);
    if (err.code === 'ENOENT') return `working directory missing: ${cwd}`;
    return `working directory unusable: ${cwd} (${err.code ?? err.message})`;
  }
}

function describeStartError(err: NodeJS.ErrnoException, program: string): string {
  if (err.code === 'ENOENT') return `command not found: ${program}`;
  if (err.code === 'EACCES') return `permission denied: ${program}`;
  return `could not start ${program}: ${err.message}`;
}

function startFailure(summary: string, started: number, sandbox: TestRunResult['sandbox'] = 'none'): TestRunResult {
  return {
    status: 'error',
    passed: null,
    failed: null,
    errors: null,
    skipped: null,
    total: null,
    failures: [],
    exitCode: null,
    signal: null,
    durationMs: Math.round(performance.now() - started),
    output: '',
    outputBytes: 0,
    truncated: false,
    sandbox,
    summary: storableText(summary),
  };
}

interface Outcome {
  exit: Exit;
  timedOut: boolean;
  output: CappedOutput;
  started: number;
  timeoutMs: number;
  sandbox: TestRunResult['sandbox'];
}

function buildResult({ exit: raw, timedOut, output, started, timeoutMs, sandbox }: Outcome): TestRunResult {
  const finished = output.finish();
  const { truncated } = finished;
  const text = storableText(finished.text);
  // bwrap reports a program it cannot exec on stderr and exits 1, where spawn would emit ENOENT.
  const notStarted = sandbox === 'bwrap' && !timedOut ? sandboxStartFailure(raw.code, text) : null;
  if (notStarted !== null) return { ...startFailure(notStarted, started, sandbox), output: text, outputBytes: output.totalBytes, truncated };
  const exit = sandbox === 'bwrap' ? sandboxExit(raw.code, raw.signal) : raw;
  const counts = parseTestSummary(text, exit.code);
  const { status, summary } = classify(exit, timedOut, counts, timeoutMs);
  return {
    status,
    passed: counts.passed,
    failed: counts.failed,
    errors: counts.errors,
    skipped: counts.skipped,
    total: counts.total,
    failures: counts.failures,
    exitCode: exit.code,
    signal: exit.signal,
    durationMs: Math.round(performance.now() - started),
    output: text,
    outputBytes: output.totalBytes,
    truncated,
    sandbox,
    summary,
  };
}

/** The exit code decides pass/fail; parsed counts only decide `no_tests` and the wording. */
function classify(exit: Exit, timedOut: boolean, counts: TestCounts, timeoutMs: number): { status: TestStatus; summary: string } {
  if (timedOut) return { status: 'timeout', summary: `timed out after ${timeoutMs} ms` };
  if (exit.signal !== null) return { status: 'error', summary: `killed by signal ${exit.signal}` };
  if (exit.code === null) return { status: 'error', summary: 'ended without an exit status' };
  if (counts.noTests) return { status: 'no_tests', summary: 'no tests found' };
  const tally = formatCounts(counts);
  if (exit.code === 0) return { status: 'passed', summary: tally === '' ? 'passed (exit code 0)' : tally };
  if ((counts.failed ?? 0) + (counts.errors ?? 0) > 0) return { status: 'failed', summary: tally };
  return { status: 'failed', summary: tally === '' ? `exit code ${exit.code}` : `exit code ${exit.code} (${tally})` };
}

function formatCounts(counts: TestCounts): string {
  if (counts.passed === null) return '';
  const parts: string[] = [];
  if ((counts.failed ?? 0) > 0) parts.push(`${counts.failed} failed`);
  if ((counts.errors ?? 0) > 0) parts.push(`${counts.errors} ${counts.errors === 1 ? 'error' : 'errors'}`);
  parts.push(`${counts.passed} passed`);
  if ((counts.skipped ?? 0) > 0) parts.push(`${counts.skipped} skipped`);
  return parts.join(', ');
}
