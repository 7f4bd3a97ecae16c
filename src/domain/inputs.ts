/**
 * Input shapes of the README's "HTTP API", validated with zod at the edge: project create/patch bodies,
 * task inputs and plan files. Unknown fields are rejected; every default lives here.
 */
import shellQuote from 'shell-quote';
import { z } from 'zod';
import { AGENT_TYPES, TASK_KEY } from '../machines/types.ts';

/**
 * The model Troupe uses when a project names none. Always priced (a test in test/actors/model checks
 * it is in the price table). Not `claude-sonnet-4-5`: the SDK marks it deprecated, end of life 2026-11-30.
 */
export const DEFAULT_MODEL = 'claude-sonnet-4-6';

export const LIMITS = {
  tasksPerRequest: 500,
  descriptionChars: 20_000,
  goalChars: 20_000,
  guidanceChars: 20_000,
  argvItems: 100,
  argChars: 4_000,
};

/**
 * Splits a command line the way a shell would (quotes, escapes) — but it never runs through
 * a shell, so operators, redirections and comments are refused rather than silently ignored.
 */
export function splitCommand(line: string): { ok: true; argv: string[] } | { ok: false; reason: string } {
  let parts: ReturnType<typeof shellQuote.parse>;
  try {
    parts = shellQuote.parse(line, (name) => `$${name}`);
  } catch (e) {
    return { ok: false, reason: `cannot split the command: ${(e as Error).message}` };
  }
  const argv: string[] = [];
  for (const part of parts) {
    if (typeof part === 'string') argv.push(part);
    else if ('op' in part && part.op === 'glob') argv.push(part.pattern);
    else if ('op' in part) return { ok: false, reason: `shell operator "${part.op}" is not supported: the command runs without a shell` };
    else return { ok: false, reason: 'shell comments are not supported: the command runs without a shell' };
  }
  if (argv.length === 0) return { ok: false, reason: 'the command is empty' };
  return { ok: true, argv };
}

/** A NUL or a lone UTF-16 surrogate (with the `u` flag a well-formed pair is one code point and does not match). */
const UNSTORABLE = /\0|\p{Surrogate}/u;

/**
 * A string that can be stored and passed on: no NUL (it cuts strings short in git and file paths,
 * and Postgres refuses it) and no lone surrogate (no UTF-8 form; Postgres refuses it in `jsonb`).
 * The HTTP edge refuses both before a schema runs; this holds for plan files too.
 */
export const text = () => z.string().refine((s) => !UNSTORABLE.test(s), { message: 'must not contain NUL or a lone surrogate' });

export const testCommandSchema = z
  .union([
    text().trim().min(1).max(LIMITS.argChars),
    z.array(text().min(1).max(LIMITS.argChars)).min(1).max(LIMITS.argvItems),
  ])
  .meta({
    description: 'A command line, split like a shell would but never run through a shell (no operators, redirections or comments), or an argv array',
    examples: ['npm test', ['node', '--test']],
  })
  .transform((value, ctx) => {
    if (Array.isArray(value)) return value;
    const split = splitCommand(value);
    if (split.ok) return split.argv;
    ctx.addIssue({ code: 'custom', message: split.reason });
    return z.NEVER;
  });

const modelName = text().min(1).max(100);

export const modelsSchema = z.strictObject({
  lead: modelName.optional(),
  backend: modelName.optional(),
  frontend: modelName.optional(),
  test: modelName.optional(),
});

export const configSchema = z.strictObject({
  maxConcurrency: z.number().int().min(1).max(64).optional().describe('tasks worked on at once (default 3)'),
  maxAgents: z.number().int().min(1).max(64).optional().describe('workers at most (default 6)'),
  maxCorrectionAttempts: z.number().int().min(0).max(10).optional().describe('corrections after failing tests (default 3)'),
  budgetUsd: z.number().positive().max(1_000_000).nullable().optional().describe('spend at which the run blocks (default: none)'),
  testTimeoutMs: z.number().int().min(1_000).max(24 * 3_600_000).optional().describe('default 300000'),
  isolation: z.enum(['worktree', 'shared']).optional().describe('default worktree when the workspace is a git repository'),
  models: modelsSchema.optional(),
  sandbox: z
    .strictObject({
      mode: z.enum(['bwrap', 'none']).optional(),
      network: z.boolean().optional(),
    })
    .optional()
    .describe('how the test command is confined (default: mode from TROUPE_SANDBOX, no network)'),
  review: z.enum(['protected', 'always', 'never']).optional().describe('when a change waits for a person (default protected)'),
  protectedPaths: z.array(text().min(1).max(500)).max(200).optional().describe('globs whose change needs review (default: manifests, lockfiles, test-runner configs)'),
});
export type ConfigInput = z.infer<typeof configSchema>;

/** A project's configuration with every default filled (what `Project.config` shows). */
export interface ProjectConfig {
  maxConcurrency: number;
  maxAgents: number;
  maxCorrectionAttempts: number;
  budgetUsd: number | null;
  testTimeoutMs: number;
  isolation: 'worktree' | 'shared';
  models: { lead: string; backend: string; frontend: string; test: string };
  sandbox: { mode: 'bwrap' | 'none'; network: boolean };
  review: 'protected' | 'always' | 'never';
  protectedPaths: string[];
}

/**
 * Files that define how a project's tests run: an answer that changes one of them (or deletes a
 * test file) goes to a person's review instead of completing on its own.
 */
export const DEFAULT_PROTECTED_PATHS: readonly string[] = [
  'package.json',
  'package-lock.json',
  'npm-shrinkwrap.json',
  'yarn.lock',
  'pnpm-lock.yaml',
  'bun.lockb',
  'bun.lock',
  'poetry.lock',
  'Pipfile.lock',
  'uv.lock',
  'Cargo.lock',
  'go.sum',
  '**/vitest.config.*',
  '**/vitest.workspace.*',
  '**/jest.config.*',
  '**/.mocharc*',
  '**/ava.config.*',
  '**/karma.conf.*',
  '**/playwright.config.*',
  '**/.c8rc*',
  '**/.nycrc*',
  'pytest.ini',
  'pyproject.toml',
  'setup.cfg',
  'setup.py',
  'tox.ini',
  'noxfile.py',
  '**/conftest.py',
  'Makefile',
  '.github/**',
];

/** Defaults that do not come from the project itself (the service's environment). */
export interface ConfigDefaults {
  sandboxMode: 'bwrap' | 'none';
}

/**
 * A stored project config with every field present: rows written before a field existed get its
 * default (a stored sandbox mode is never changed by the service's current `TROUPE_SANDBOX`).
 */
export function normalizeConfig(stored: Record<string, unknown>): ProjectConfig {
  const c = stored as Partial<ProjectConfig>;
  return {
    ...(c as ProjectConfig),
    sandbox: { mode: c.sandbox?.mode ?? 'bwrap', network: c.sandbox?.network ?? false },
    review: c.review ?? 'protected',
    protectedPaths: c.protectedPaths ?? [...DEFAULT_PROTECTED_PATHS],
  };
}

export function fillConfig(input: ConfigInput | undefined, isGit: boolean, base?: ProjectConfig, defaults?: ConfigDefaults): ProjectConfig {
  const b = base;
  return {
    maxConcurrency: input?.maxConcurrency ?? b?.maxConcurrency ?? 3,
    maxAgents: input?.maxAgents ?? b?.maxAgents ?? 6,
    maxCorrectionAttempts: input?.maxCorrectionAttempts ?? b?.maxCorrectionAttempts ?? 3,
    budgetUsd: input?.budgetUsd !== undefined ? input.budgetUsd : (b?.budgetUsd ?? null),
    testTimeoutMs: input?.testTimeoutMs ?? b?.testTimeoutMs ?? 300_000,
    // Worktrees need a git repository; a plain directory can only be shared.
    isolation: isGit ? (input?.isolation ?? b?.isolation ?? 'worktree') : 'shared',
    models: {
      lead: input?.models?.lead ?? b?.models.lead ?? DEFAULT_MODEL,
      backend: input?.models?.backend ?? b?.models.backend ?? DEFAULT_MODEL,
      frontend: input?.models?.frontend ?? b?.models.frontend ?? DEFAULT_MODEL,
      test: input?.models?.test ?? b?.models.test ?? DEFAULT_MODEL,
    },
    sandbox: {
      mode: input?.sandbox?.mode ?? b?.sandbox.mode ?? defaults?.sandboxMode ?? 'bwrap',
      network: input?.sandbox?.network ?? b?.sandbox.network ?? false,
    },
    review: input?.review ?? b?.review ?? 'protected',
    protectedPaths: input?.protectedPaths ?? b?.protectedPaths ?? [...DEFAULT_PROTECTED_PATHS],
  };
}

export const taskInputSchema = z.strictObject({
  key: text().regex(TASK_KEY, 'must match [A-Za-z0-9._-]{1,64}'),
  title: text().trim().min(1).max(200),
  description: text().max(LIMITS.descriptionChars),
  agentType: z.enum(AGENT_TYPES).optional().describe('inferred from the text when absent'),
  dependsOn: z.array(text().min(1).max(64)).max(200).default([]).describe('keys of tasks in the same request or already in the project'),
  priority: z.number().int().min(0).max(4).default(2).describe('0 highest … 4'),
});
export type TaskInput = z.infer<typeof taskInputSchema>;

export const addTasksSchema = z
  .strictObject({
    tasks: z.array(taskInputSchema).min(1).max(LIMITS.tasksPerRequest),
  })
  .meta({ examples: [{ tasks: [{ key: 'api', title: 'Add GET /items', description: 'An endpoint listing items', dependsOn: [] }] }] });

export const createProjectSchema = z.strictObject({
  name: text().trim().min(1).max(100).meta({ examples: ['todo-api'] }),
  testCommand: testCommandSchema,
  workspace: text().min(1).max(4096).optional().describe('absolute, or relative to the service’s working directory (default: a new git repository in the data dir)'),
  goal: text().trim().min(1).max(LIMITS.goalChars).optional().meta({ description: 'what the lead plans tasks from', examples: ['A REST API for a todo list, with tests'] }),
  config: configSchema.optional(),
});
export type CreateProjectInput = z.input<typeof createProjectSchema>;
export type CreateProject = z.output<typeof createProjectSchema>;

export const patchProjectSchema = z
  .strictObject({
    name: text().trim().min(1).max(100).optional(),
    testCommand: testCommandSchema.optional(),
    config: configSchema.optional(),
  })
  .refine((v) => Object.keys(v).length > 0, { message: 'nothing to change: give name, testCommand or config' });
export type PatchProject = z.output<typeof patchProjectSchema>;

/** A `troupe run` plan file: the project-create body plus its tasks. */
export const planFileSchema = createProjectSchema.extend({
  tasks: z.array(taskInputSchema).max(LIMITS.tasksPerRequest).optional(),
});

export const retrySchema = z.strictObject({ guidance: text().trim().min(1).max(LIMITS.guidanceChars).optional().describe('told to the next attempt') });

/** Zod issues as `details`: one entry per offending field. */
export function issuesOf(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.flatMap((i) => {
    const at = i.path.map(String);
    // An unknown field is named by its own path, not its parent's.
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => ({ path: [...at, k].join('.'), message: 'unknown field' }));
    return [{ path: at.join('.') || '(body)', message: i.message }];
  });
}
