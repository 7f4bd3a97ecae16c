/**
 * `troupe <command>`: serve | run | demo | migrate. Flags are parsed strictly: an unknown flag is an error
 * with a hint, never silently ignored. Each command loads what it needs when it runs (dynamic
 * `import()`): `--help`, `--version` and a bad flag load neither the server, the database drivers,
 * the SDK nor xstate, so they answer in about Node's own start-up time.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { coerceError } from './errors.ts';
import { VERSION } from './package-files.ts';
import { DEFAULT_INSPECT_PORT, DEMO_HELP, HELP, MIGRATE_HELP, RUN_HELP, SERVE_HELP } from './cli/help.ts';
import { UsageError } from './cli/usage-error.ts';
import type { Config } from './config.ts';

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
  const [{ loadConfig }, { startService }] = await Promise.all([import('./config.ts'), import('./main.ts')]);
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
  const [{ loadConfig }, { lockDataDir }, { openStore }] = await Promise.all([import('./config.ts'), import('./datadir-lock.ts'), import('./main.ts')]);
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
  const [{ loadConfig }, { runCommand }] = await Promise.all([import('./config.ts'), import('./cli/plan-commands.ts')]);
  return runCommand(positionals[0]!, { workspace: values.workspace, json: values.json ?? false }, loadConfig());
}

async function demo(args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean' } } as const, DEMO_HELP);
  if (values.help) {
    console.log(DEMO_HELP);
    return 0;
  }
  const [{ loadConfig }, { demoCommand }] = await Promise.all([import('./config.ts'), import('./cli/plan-commands.ts')]);
  return demoCommand(loadConfig(), values.json ?? false);
}

function portOf(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`${flag} must be a port number (0-65535), got ${JSON.stringify(value)}`);
  return n;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = { serve, run, demo, migrate };

/** What a failed command prints, and its exit code: bad input 2, anything else 1. */
async function reportFailure(command: string, err: Error): Promise<number> {
  if (err instanceof UsageError) {
    console.error(`troupe ${command}: ${err.message}`);
    return 2;
  }
  // Whatever threw these has loaded their modules already: importing them here costs nothing.
  const [{ ConfigError }, { DataDirLockedError }] = await Promise.all([import('./config.ts'), import('./datadir-lock.ts')]);
  if (err instanceof ConfigError) {
    console.error(`troupe ${command}: ${err.message}`);
    return 2;
  }
  if (err instanceof DataDirLockedError) {
    // Not a crash and not bad input: one line naming the holder, exit 1 (README "One process per data dir").
    console.error(`troupe ${command}: ${err.message}`);
    return 1;
  }
  const { createLogger } = await import('./logger.ts');
  createLogger('error').error({ err }, `troupe ${command} failed`);
  console.error(`troupe ${command}: ${err.message}`);
  return 1;
}

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
    return reportFailure(command, coerceError(e));
  }
}

process.exitCode = await main(process.argv.slice(2));
// Everything is closed by now; if a stray handle still keeps the loop alive, do not hang.
setTimeout(() => process.exit(), 2_000).unref();
