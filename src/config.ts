/**
 * The only reader of `process.env`. Every default lives here and is validated once.
 */
import path from 'node:path';
import { z } from 'zod';

/** Variables a test command may see. Everything else — API keys, tokens, DATABASE_URL — stays out. */
const CHILD_ENV_ALLOW = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LANGUAGE', 'TZ', 'TMPDIR', 'TMP', 'TEMP', 'TERM', 'SYSTEMROOT'];
const SECRET_NAME = /KEY|TOKEN|SECRET|PASSW|CREDENTIAL|DATABASE_URL|^ANTHROPIC_|^TROUPE_/i;

const envSchema = z.object({
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
  TROUPE_DATA_DIR: z.string().min(1).default('./.troupe'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  TROUPE_API_TOKEN: z.string().min(1).optional(),
  TROUPE_WORKSPACE_ROOT: z.string().min(1).optional(),
  TROUPE_INSPECT_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  TROUPE_MODEL_MAX_RETRIES: z.coerce.number().int().min(0).max(10).default(2),
  TROUPE_MODEL_TIMEOUT_MS: z.coerce.number().int().min(1000).default(600_000),
  TROUPE_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
  TROUPE_SANDBOX: z.enum(['bwrap', 'none']).default('bwrap'),
  TROUPE_MAX_STREAMS: z.coerce.number().int().min(1).max(100_000).default(256),
});

export interface Config {
  dataDir: string;
  databaseUrl: string | undefined;
  port: number;
  host: string;
  apiToken: string | undefined;
  workspaceRoot: string | undefined;
  inspectPort: number | undefined;
  model: { maxRetries: number; timeoutMs: number };
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** `config.sandbox.mode` of new projects that do not say (`TROUPE_SANDBOX`). */
  sandboxMode: 'bwrap' | 'none';
  /** SSE streams open at once, across every stream route (`TROUPE_MAX_STREAMS`). */
  maxStreams: number;
  /** The environment a project's test command runs with: an allowlist, never a secret. */
  childEnv: Record<string, string>;
  /** The whole environment, for the few parts that pass it on as it is (the Anthropic SDK reads its own). */
  env: NodeJS.ProcessEnv;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function childEnvFrom(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || SECRET_NAME.test(name)) continue;
    if (CHILD_ENV_ALLOW.includes(name) || name.startsWith('LC_')) out[name] = value;
  }
  // Plain, parseable output from test runners.
  out.CI = '1';
  out.NO_COLOR = '1';
  out.FORCE_COLOR = '0';
  return out;
}

/** Reads and validates the environment; `overrides` (from CLI flags) win. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid environment: ${fields}`);
  }
  const e = parsed.data;
  const config: Config = {
    dataDir: path.resolve(e.TROUPE_DATA_DIR),
    databaseUrl: e.DATABASE_URL,
    port: e.PORT,
    host: e.HOST,
    apiToken: e.TROUPE_API_TOKEN,
    workspaceRoot: e.TROUPE_WORKSPACE_ROOT ? path.resolve(e.TROUPE_WORKSPACE_ROOT) : undefined,
    inspectPort: e.TROUPE_INSPECT_PORT,
    model: { maxRetries: e.TROUPE_MODEL_MAX_RETRIES, timeoutMs: e.TROUPE_MODEL_TIMEOUT_MS },
    logLevel: e.TROUPE_LOG_LEVEL,
    sandboxMode: e.TROUPE_SANDBOX,
    maxStreams: e.TROUPE_MAX_STREAMS,
    childEnv: childEnvFrom(env),
    env,
    ...overrides,
  };
  if (overrides.dataDir) config.dataDir = path.resolve(overrides.dataDir);
  return config;
}
