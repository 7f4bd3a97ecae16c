/** The real `troupe` executable as a child process. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/troupe.js', import.meta.url));

export interface Proc {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  exit: Promise<number | null>;
}

/** Runs `troupe …args` with only PATH and HOME from this process, plus `env`. */
export function troupe(args: string[], env: Record<string, string>, cwd?: string): Proc {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stderr: () => err, stdout: () => out, exit };
}

/** Resolves with the service URL from the "troupe listening" log line. */
export function listening(p: Proc): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      for (const line of p.stderr().split('\n')) {
        if (!line.startsWith('{')) continue;
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'troupe listening' && entry.url) return resolve(entry.url);
      }
    };
    p.child.stderr!.on('data', check);
    void p.exit.then((code) => reject(new Error(`troupe exited with ${code}: ${p.stderr()}`)));
  });
}

/** `troupe(…)`, with a cleanup pushed to `cleanups` that kills the child if it still runs. */
export function troupeKilledAfter(cleanups: (() => Promise<unknown>)[], args: string[], env: Record<string, string>): Proc {
  const p = troupe(args, env);
  cleanups.push(async () => {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await p.exit;
  });
  return p;
}
