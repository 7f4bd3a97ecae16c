/**
 * `troupe <command>`: serve | run | demo | migrate. Flags are parsed strictly: an unknown flag is an error
 * with a hint, never silently ignored.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { DataDirLockedError, lockDataDir } from './datadir-lock.ts';
import { coerceError } from './errors.ts';
import { createLogger } from './logger.ts';
import { openStore, startService, VERSION } from './main.ts';
import { UsageError, demoCommand, runCommand } from './cli/plan-commands.ts';

const DEFAULT_INSPECT_PORT = 8080;

const HELP = `troupe ${VERSION} — a team of AI coding agents as XState actors

Usage:
  troupe serve [--port N] [--host H] [--data-dir D] [--inspect[=PORT]]
  troupe run PLAN.json [--workspace DIR] [--json]
  troupe demo [--json]
  troupe migrate
  troupe --version | --help

Commands:
  serve     Run the HTTP service (PGlite in ./.troupe by default, or DATABASE_URL).
  run       Run one plan in this process with live progress; exit 0 only if every task completed.
  demo      An offline end-to-end demo with a bundled scripted model: no API key, no network.
  migrate   Apply pending database migrations to DATABASE_URL (or the embedded PGlite) and exit.

Run 'troupe <command> --help' for a command's flags and examples.`;

const SERVE_HELP = `Usage: troupe serve [--port N] [--host H] [--data-dir D] [--inspect[=PORT]]

Runs the Troupe service: migrations, then runs left active by a previous process resume,
then the HTTP API answers. SIGTERM/SIGINT stop it gracefully. One process per data dir: a
second one on a data dir in use exits 1 at once, naming the pid that holds it.

Flags:
  --port N          listen port (env PORT, default 3000; 0 picks a free one)
  --host H          listen address (env HOST, default 127.0.0.1; any other host needs TROUPE_API_TOKEN)
  --data-dir D      data directory: PGlite files, default workspaces, worktrees (env TROUPE_DATA_DIR, default ./.troupe)
  --inspect[=PORT]  start the Stately inspector bridge on PORT (default ${DEFAULT_INSPECT_PORT}; env TROUPE_INSPECT_PORT)

Examples:
  troupe serve
  troupe serve --port 8787 --data-dir /var/lib/troupe
  DATABASE_URL=postgres://postgres@127.0.0.1:5432/troupe troupe serve --inspect`;

const RUN_HELP = `Usage: troupe run PLAN.json [--workspace DIR] [--json]

Runs one plan in this process (PGlite in a temporary directory, or DATABASE_URL) with live
progress, and prints a summary. The plan is the project-create body of the API plus "tasks":

  {
    "name": "calc",
    "testCommand": "node --test",
    "workspace": "./calc",
    "tasks": [
      { "key": "add", "title": "add(a, b)", "description": "Create lib/add.js exporting add(a, b), with a node:test test." },
      { "key": "sum", "title": "sum(list)", "description": "Create lib/sum.js using add, with a test.", "dependsOn": ["add"] }
    ]
  }

("goal" instead of "tasks" lets the lead plan.) A relative workspace in the plan is relative to the
plan file; without one, a fresh git repository in a temporary directory is used (its path is
printed). Claude is called with ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL, if set).

Flags:
  --workspace DIR   work in DIR (created and git-initialised if missing), whatever the plan says
  --json            the run's events as JSON lines on stdout (the summary goes to stderr)

Exit codes: 0 every task completed, 1 blocked or failed, 2 invalid input, 130 cancelled (Ctrl-C).

Examples:
  troupe run plan.json
  troupe run plan.json --workspace ./out --json > events.jsonl`;

const DEMO_HELP = `Usage: troupe demo [--json]

An offline end-to-end demo: a bundled scripted model (a local double of the Messages API; the
real SDK talks to it, whatever ANTHROPIC_* says) plays the lead and three agents building a small
JavaScript library in a temporary git workspace. One task fails its tests first and is corrected.
Live progress, then a summary: tasks, attempts, tokens, the workspace and its commits.

Flags:
  --json   the run's events as JSON lines on stdout

Example:
  npx troupe demo`;

const MIGRATE_HELP = `Usage: troupe migrate

Applies pending migrations (under a Postgres advisory lock) to DATABASE_URL, or to the embedded
PGlite database in the data directory when DATABASE_URL is unset, and exits. On a PGlite data
dir that a running service holds it exits 1 at once, naming that service's pid.

Example:
  DATABASE_URL=postgres://postgres@127.0.0.1:5432/troupe troupe migrate`;

function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, help: string, allowPositionals = false) {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals });
  } catch (e) {
    const message = coerceError(e).message.replace(/\. To specify a positional argument.*$/, '');
    throw new UsageError(`${message}\n\n${help}`);
  }
}

async function serve(args: string[]): Promise<number> {
  // `--inspect` takes an optional value, which parseArgs cannot express: give it the default.
  const normalised = args.map((a) => (a === '--inspect' ? `--inspect=${DEFAULT_INSPECT_PORT}` : a));
  const { values } = parse(
    normalised,
    { port: { type: 'string' }, host: { type: 'string' }, 'data-dir': { type: 'string' }, inspect: { type: 'string' } } as const,
    SERVE_HELP,
  );
  if (values.help) {
    console.log(SERVE_HELP);
    return 0;
  }
  const overrides: Partial<Config> = {};
  if (values.port !== undefined) overrides.port = portOf(values.port, '--port');
  if (values.host !== undefined) overrides.host = values.host;
  if (values['data-dir'] !== undefined) overrides.dataDir = values['data-dir'];
  if (values.inspect !== undefined) overrides.inspectPort = portOf(values.inspect, '--inspect');
  const config = loadConfig(undefined, overrides);
  const service = await startService(config);
  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = () => {
      signals += 1;
      if (signals > 1) process.exit(130);
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await service.stop();
  return 0;
}

async function migrate(args: string[]): Promise<number> {
  const { values } = parse(args, {}, MIGRATE_HELP);
  if (values.help) {
    console.log(MIGRATE_HELP);
    return 0;
  }
  const config = loadConfig();
  // With DATABASE_URL the data dir is not touched (Postgres serialises migrations with an advisory
  // lock); the embedded PGlite cluster must not be opened by a second process.
  const lock = config.databaseUrl ? null : await lockDataDir(config.dataDir);
  try {
    const store = await openStore(config);
    try {
      await store.migrate();
    } finally {
      await store.close();
    }
  } finally {
    lock?.release();
  }
  console.log(`migrations applied (${config.databaseUrl ? 'postgres' : `PGlite in ${config.dataDir}`})`);
  return 0;
}

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { workspace: { type: 'string' }, json: { type: 'boolean' } } as const, RUN_HELP, true);
  if (values.help) {
    console.log(RUN_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`give exactly one plan file (got ${positionals.length})\n\n${RUN_HELP}`);
  return runCommand(positionals[0]!, { workspace: values.workspace, json: values.json ?? false }, loadConfig());
}

async function demo(args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean' } } as const, DEMO_HELP);
  if (values.help) {
    console.log(DEMO_HELP);
    return 0;
  }
  return demoCommand(loadConfig(), values.json ?? false);
}

function portOf(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`${flag} must be a port number (0-65535), got ${JSON.stringify(value)}`);
  return n;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = { serve, run, demo, migrate };

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-v') {
    console.log(VERSION);
    return 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    console.error(`troupe: unknown command '${command}'. Commands: ${Object.keys(COMMANDS).join(', ')}. Try 'troupe --help'.`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (e) {
    const err = coerceError(e);
    if (err instanceof UsageError || err instanceof ConfigError) {
      console.error(`troupe ${command}: ${err.message}`);
      return 2;
    }
    if (err instanceof DataDirLockedError) {
      // Not a crash and not bad input: one line naming the holder, exit 1 (README "One process per data dir").
      console.error(`troupe ${command}: ${err.message}`);
      return 1;
    }
    createLogger('error').error({ err }, `troupe ${command} failed`);
    console.error(`troupe ${command}: ${err.message}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
// Everything is closed by now; if a stray handle still keeps the loop alive, do not hang.
setTimeout(() => process.exit(), 2_000).unref();
