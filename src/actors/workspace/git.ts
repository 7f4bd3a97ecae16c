/**
 * A thin, hermetic git runner. Every call runs `git` without a shell, with no user hooks, no
 * signing, no prompts and no user or system config, in an environment that carries no secrets.
 */
import { execFile } from 'node:child_process';
import { constants as osConstants, homedir } from 'node:os';
import { realpath } from 'node:fs/promises';

/** What git printed and how it exited. */
export interface GitResult {
  stdout: string;
  stderr: string;
  /** Exit code; 128 + n when git was killed by signal n. */
  code: number;
}

/** Where and how to run git. */
export interface GitOptions {
  cwd: string;
  signal?: AbortSignal | undefined;
  /**
   * Base environment, normally `config.childEnv`. Only the allowlisted variables below reach git;
   * without it git gets a standard PATH and the user's home directory.
   */
  env?: Record<string, string> | undefined;
  /** How long an aborted call may run on before git is killed. Default 10 s. */
  abortGraceMs?: number | undefined;
}

/**
 * `-c` settings that make every call behave the same on any machine: no hooks from the repo or the
 * user, no GPG prompt, no background gc or fsmonitor daemon, an identity that always exists.
 */
const SAFETY_CONFIG = [
  'user.name=Troupe',
  'user.email=troupe@localhost',
  'commit.gpgsign=false',
  'tag.gpgsign=false',
  'core.hooksPath=/dev/null',
  'core.fsmonitor=false',
  'core.quotePath=false',
  'gc.auto=0',
  'maintenance.auto=false',
  'advice.detachedHead=false',
];

const ABORT_GRACE_MS = 10_000;
const ENV_ALLOW = ['PATH', 'HOME', 'LANG', 'LANGUAGE', 'TZ', 'TMPDIR', 'SYSTEMROOT'];
const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin:/opt/homebrew/bin';

/**
 * Builds git's environment from scratch rather than trimming the parent's: variables such as
 * GIT_DIR or GIT_INDEX_FILE (set when tests run inside a git hook) would silently redirect every
 * call to another repository, and API keys must never reach a child process.
 */
export function gitEnv(base?: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(base ?? {})) {
    if (ENV_ALLOW.includes(name) || name.startsWith('LC_')) env[name] = value;
  }
  env.PATH ??= DEFAULT_PATH;
  env.HOME ??= homedir();
  // User and system config can turn on rerere, autostash, autocrlf, a global excludes file or a
  // credential helper; ignoring both keeps merges and `add -A` identical on every machine.
  env.GIT_CONFIG_NOSYSTEM = '1';
  env.GIT_CONFIG_GLOBAL = '/dev/null';
  env.GIT_TERMINAL_PROMPT = '0';
  env.GIT_EDITOR = 'true';
  env.GIT_OPTIONAL_LOCKS = '0';
  return env;
}

/**
 * Runs git. Resolves with the exit code (never rejects on a non-zero exit); rejects on spawn
 * failure, or with the signal's reason once an aborted call has ended.
 */
export async function git(args: readonly string[], opts: GitOptions): Promise<GitResult> {
  const { signal } = opts;
  if (signal?.aborted) throw abortReason(signal);
  const argv = [...SAFETY_CONFIG.flatMap((c) => ['-c', c]), ...args];
  return new Promise((resolve, reject) => {
    const timers: NodeJS.Timeout[] = [];
    // On abort git gets a grace period to finish the command it is running, and the promise
    // settles only once git has exited. Killing it at once looked simpler but leaves lock files
    // behind (a SIGTERM during `git commit` left `refs/heads/<branch>.lock` in testing, which
    // breaks that branch until someone deletes it), and execFile's own `signal` option calls back
    // before git has even exited, racing the `rebase --abort` that follows.
    const onAbort = () => {
      const grace = opts.abortGraceMs ?? ABORT_GRACE_MS;
      timers.push(setTimeout(() => child.kill('SIGTERM'), grace), setTimeout(() => child.kill('SIGKILL'), grace + 5_000));
      for (const timer of timers) timer.unref();
    };
    const child = execFile(
      'git',
      argv,
      { cwd: opts.cwd, env: gitEnv(opts.env), maxBuffer: 64 * 1024 * 1024, encoding: 'utf8', windowsHide: true },
      (error, stdout, stderr) => {
        signal?.removeEventListener('abort', onAbort);
        for (const timer of timers) clearTimeout(timer);
        if (signal?.aborted) return reject(abortReason(signal));
        if (!error) return resolve({ stdout, stderr, code: 0 });
        if (typeof error.code === 'number') return resolve({ stdout, stderr, code: error.code });
        if (error.code == null && typeof error.signal === 'string') {
          return resolve({ stdout, stderr, code: 128 + osConstants.signals[error.signal] });
        }
        reject(new Error(`git ${args[0] ?? ''} could not run: ${error.message}`, { cause: error }));
      },
    );
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs git and rejects with its stderr on a non-zero exit; for calls that must succeed. */
export async function gitOk(args: readonly string[], opts: GitOptions): Promise<string> {
  const result = await git(args, opts);
  if (result.code !== 0) {
    const detail = (result.stderr || result.stdout).trim();
    throw new Error(`git ${args.join(' ')} failed (exit ${result.code}): ${detail}`);
  }
  return result.stdout;
}

/** True only when `dir` is the top level of a git work tree (not merely inside someone else's repo). */
export async function isGitRepo(dir: string, opts: Omit<GitOptions, 'cwd'> = {}): Promise<boolean> {
  let real: string;
  try {
    real = await realpath(dir);
  } catch {
    return false;
  }
  const result = await git(['rev-parse', '--show-toplevel'], { ...opts, cwd: real });
  if (result.code !== 0) return false;
  const top = result.stdout.trim();
  try {
    return (await realpath(top)) === real;
  } catch {
    return false;
  }
}

/** The error to throw for an aborted signal: its reason when that is an Error, else an AbortError. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new DOMException('This operation was aborted', 'AbortError');
}
