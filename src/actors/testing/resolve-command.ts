/**
 * Whether a test command can start, found without starting it: the program of `argv` must be an
 * executable file, looked up the way `spawn` (execvp) looks it up — a name with a slash against
 * the working directory, a bare name on the child environment's `PATH`. This is the preflight that
 * turns "`nonexistent-cmd`: four paid model calls correcting a command not found" into a refusal
 * before any model call.
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';

export type CommandCheck = { ok: true; program: string } | { ok: false; reason: string };

/** One sentence naming the program, e.g. "command not found: pytest (not on PATH)". */
export async function resolveTestCommand(argv: readonly string[], cwd: string, env: Readonly<Record<string, string>>): Promise<CommandCheck> {
  const program = argv[0];
  if (program === undefined || program === '') return { ok: false, reason: 'the test command is empty' };
  if (program.includes('/')) {
    const full = path.resolve(cwd, program);
    const why = await notExecutable(full);
    return why === null ? { ok: true, program: full } : { ok: false, reason: `${why}: ${program} (in ${cwd})` };
  }
  const dirs = (env.PATH ?? '').split(path.delimiter).filter((d) => d !== '');
  let denied: string | null = null;
  for (const dir of dirs) {
    const full = path.resolve(cwd, dir, program);
    const why = await notExecutable(full);
    if (why === null) return { ok: true, program: full };
    if (why === 'permission denied') denied ??= full;
  }
  if (denied !== null) return { ok: false, reason: `permission denied: ${denied} is not executable` };
  return { ok: false, reason: dirs.length === 0 ? `command not found: ${program} (PATH is empty)` : `command not found: ${program} (not on PATH)` };
}

/** Null when `file` is an executable regular file; otherwise what is wrong with it. */
async function notExecutable(file: string): Promise<string | null> {
  const info = await stat(file).catch(() => null);
  if (info === null) return 'command not found';
  if (!info.isFile()) return 'not a file';
  return access(file, constants.X_OK).then(
    () => null,
    () => 'permission denied',
  );
}
