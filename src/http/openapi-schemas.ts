/**
 * What the API answers, as zod schemas, for `/openapi.json`: the shapes of the README's "HTTP API" (Project,
 * Task, Run, ActorView, usage, events, the error envelope) as `actors/runtime/views.ts` and the
 * runtime build them, and `describe()`, the per-route `describeRoute` that names a route's
 * answers. Nothing here validates a request: request schemas live in `domain/inputs.ts` and the
 * routes, and reach the document through `valid()` (validate.ts).
 */
import { describeRoute, resolver, type DescribeRouteOptions } from 'hono-openapi';
import type { MiddlewareHandler } from 'hono';
import { z, type ZodType } from 'zod';
import { BLOCKED_REASONS, EVENT_TYPES, RUN_STATUSES, TASK_STATUSES, TEST_STATUSES } from '../events/types.ts';
import { taskInputSchema } from '../domain/inputs.ts';

/** The agent types a task input names (`backend`, `frontend`, `test`). */
const agentType = taskInputSchema.shape.agentType.unwrap();
const time = () => z.string().meta({ format: 'date-time' });
const count = () => z.number().int().nullable().describe('null when the runner’s output was not understood, never 0 for that');

export const errorSchema = z
  .strictObject({
    error: z.strictObject({
      code: z.string().describe('snake_case, e.g. validation_failed, not_found, conflict'),
      message: z.string().describe('a human sentence'),
      details: z.unknown().optional().describe('for 400: one `{path, message}` per offending field'),
    }),
  })
  .meta({ id: 'Error', description: 'Every failure: `{"error":{"code","message","details"?}}`' });

export const usageSchema = z
  .strictObject({
    inputTokens: z.number().int(),
    outputTokens: z.number().int(),
    cacheReadTokens: z.number().int(),
    cacheWriteTokens: z.number().int(),
    costUsd: z.number().nullable().describe('null when any call used an unpriced model'),
  })
  .meta({ id: 'Usage' });

const progressSchema = z
  .strictObject({
    total: z.number().int(),
    pending: z.number().int(),
    inProgress: z.number().int(),
    review: z.number().int(),
    completed: z.number().int(),
    failed: z.number().int(),
    blocked: z.number().int(),
    cancelled: z.number().int(),
    percent: z.number().int().min(0).max(100),
  })
  .meta({ id: 'Progress' });

const configSchema = z
  .strictObject({
    maxConcurrency: z.number().int(),
    maxAgents: z.number().int(),
    maxCorrectionAttempts: z.number().int(),
    budgetUsd: z.number().nullable(),
    testTimeoutMs: z.number().int(),
    isolation: z.enum(['worktree', 'shared']),
    models: z.strictObject({ lead: z.string(), backend: z.string(), frontend: z.string(), test: z.string() }),
    sandbox: z.strictObject({ mode: z.enum(['bwrap', 'none']), network: z.boolean() }),
    review: z.enum(['protected', 'always', 'never']),
    protectedPaths: z.array(z.string()),
  })
  .meta({ id: 'ProjectConfig', description: 'The configuration with every default filled' });

export const projectSchema = z
  .strictObject({
    id: z.string(),
    name: z.string(),
    workspace: z.string().describe('absolute'),
    testCommand: z.array(z.string()).describe('argv, never run through a shell'),
    goal: z.string().nullable(),
    config: configSchema,
    status: z.enum(['idle', ...RUN_STATUSES]).describe('the latest run’s status, or idle'),
    progress: progressSchema,
    usage: usageSchema,
    createdAt: time(),
  })
  .meta({ id: 'Project' });

const reviewSchema = z.strictObject({
  reason: z.enum(['protected_paths', 'tests_deleted', 'always']),
  files: z.array(z.string()),
  attempt: z.number().int(),
  verified: z.boolean(),
  decision: z.enum(['approved', 'rejected']).optional(),
});

export const taskSchema = z
  .strictObject({
    id: z.string(),
    projectId: z.string(),
    key: z.string(),
    title: z.string(),
    description: z.string(),
    agentType,
    dependsOn: z.array(z.string()).describe('keys'),
    priority: z.number().int().min(0).max(4),
    status: z.enum(TASK_STATUSES),
    blockedReason: z.enum(BLOCKED_REASONS).nullable(),
    reason: z.string().nullable().describe('why the task failed, blocked, or completed unverified'),
    verified: z.boolean().nullable().describe('the project’s own, unmodified test setup passed (null until decided)'),
    agentId: z.string().nullable(),
    attempts: z.number().int().describe('generations made so far (1 + corrections)'),
    guidance: z.string().nullable(),
    commit: z.string().nullable(),
    filesChanged: z.array(z.string()),
    review: reviewSchema.nullable().describe('why the task waits (or waited) for review, and the decision'),
    createdAt: time(),
    startedAt: time().nullable(),
    completedAt: time().nullable(),
  })
  .meta({ id: 'Task' });

const testResultSchema = z.strictObject({
  attempt: z.number().int(),
  epoch: z.number().int(),
  status: z.enum(TEST_STATUSES),
  passed: count(),
  failed: count(),
  errors: count(),
  skipped: count(),
  total: count(),
  phase: z.enum(['baseline', 'task', 'merge']),
  failures: z.array(z.strictObject({ name: z.string(), message: z.string().nullable() })),
  exitCode: z.number().int().nullable(),
  durationMs: z.number().int(),
  verified: z.boolean(),
  sandbox: z.enum(['bwrap', 'none']),
  output: z.string().describe('capped, secrets-free output of the test command'),
  createdAt: time(),
});

export const taskDetailSchema = taskSchema
  .extend({
    testResults: z.array(testResultSchema),
    baseline: z
      .strictObject({
        commit: z.string().nullable(),
        status: z.enum(TEST_STATUSES),
        passed: count(),
        failed: count(),
        total: count(),
        failing: z.array(z.string()).describe('tests already failing on the base tree'),
        summary: z.string().nullable(),
        createdAt: time(),
      })
      .nullable()
      .describe('the test run on the base tree this task was judged against (null before any)'),
    corrections: z.array(
      z.strictObject({
        attempt: z.number().int(),
        epoch: z.number().int(),
        status: z.string(),
        errorSummary: z.string().nullable(),
        createdAt: time(),
        updatedAt: time(),
      }),
    ),
    usage: usageSchema,
  })
  .meta({ id: 'TaskDetail' });

export const runSchema = z
  .strictObject({
    id: z.string(),
    projectId: z.string(),
    status: z.enum(RUN_STATUSES),
    startedAt: time(),
    endedAt: time().nullable(),
    summary: z.string().nullable().describe('always a reason when failed or blocked'),
  })
  .meta({ id: 'Run' });

export const actorSchema = z
  .strictObject({
    id: z.string().describe('lead, backend-1, frontend-1, test-2, …'),
    kind: z.enum(['lead', 'worker']),
    agentType: agentType.optional(),
    machine: z.string(),
    machineVersion: z.number().int(),
    state: z.unknown().describe('the XState state value'),
    status: z.string().describe('the XState actor status'),
    taskId: z.string().optional(),
    taskKey: z.string().optional(),
    attempt: z.number().int().optional(),
    updatedAt: time(),
  })
  .meta({ id: 'ActorView' });

export const actorDetailSchema = actorSchema.extend({ snapshot: z.unknown().describe('the sanitised persisted snapshot') }).meta({ id: 'ActorDetail' });

const usageRow = (key: string, what: string) => usageSchema.extend({ [key]: z.string().nullable().describe(what) });

export const usageReportSchema = z
  .strictObject({
    totals: usageSchema,
    byTask: z.array(usageRow('taskId', 'null: calls outside any task (planning)').extend({ key: z.string().nullable() })),
    byAgent: z.array(usageRow('agentId', 'the actor that made the calls')),
    byModel: z.array(usageRow('model', 'the model called')),
  })
  .meta({ id: 'UsageReport' });

export const eventSchema = z
  .strictObject({
    seq: z.number().int().describe('the event’s position in the log; the SSE `id`'),
    type: z.enum(EVENT_TYPES),
    projectId: z.string(),
    runId: z.string().optional(),
    taskId: z.string().optional(),
    agentId: z.string().optional(),
    at: time(),
    data: z.record(z.string(), z.unknown()).describe('depends on `type` (README, "Events")'),
  })
  .meta({ id: 'Event' });

export const eventPageSchema = z.strictObject({
  events: z.array(eventSchema),
  next: z.number().int().describe('the `since` of the next page'),
});

export const fileDiffsSchema = z.strictObject({
  files: z.array(z.strictObject({ path: z.string(), status: z.enum(['added', 'modified', 'deleted']), patch: z.string() })),
});

export const machinesSchema = z.array(z.strictObject({ name: z.string(), version: z.number().int() }));

export const healthSchema = z.strictObject({ status: z.enum(['ok', 'error']), db: z.enum(['ok', 'error']), version: z.string() });

/** What each error status means on this API, said once; each is a `components.responses` entry. */
export const ERRORS = {
  400: ['BadRequest', 'Invalid request (body, query, path, a NUL in the URL, malformed JSON): `details` lists the offending fields'],
  401: ['Unauthorized', 'Missing or wrong bearer token (only when the service runs with `TROUPE_API_TOKEN`)'],
  403: ['Forbidden', '`forbidden_host`: without a token, a Host that is not this machine; `forbidden_origin`: a state-changing request from another origin'],
  404: ['NotFound', 'No such project, task, run, actor or machine'],
  409: ['Conflict', 'Not allowed in the current state, or a lost race'],
  413: ['PayloadTooLarge', 'Body over the limit'],
  415: ['UnsupportedMediaType', 'The body is not UTF-8 JSON'],
  422: ['Unprocessable', 'Well-formed but impossible: a dependency cycle, an unknown dependency, nothing to run, a sandbox this machine lacks'],
  500: ['Internal', 'Internal error (never a stack trace)'],
  503: ['Unavailable', 'Retry after `Retry-After` seconds: `starting`, `unavailable` (the database), `owner_unavailable` (the process owning the run did not answer), `too_many_streams`'],
} as const;
export type ErrorStatus = keyof typeof ERRORS;

/** The error envelope answered with `status`, by reference. */
export const errorRef = (status: ErrorStatus) => ({ $ref: `#/components/responses/${ERRORS[status][0]}` });

/** `components.responses`: every error status with the envelope. */
export function errorResponses() {
  return Object.fromEntries(Object.values(ERRORS).map(([name, description]) => [name, { description, content: { 'application/json': { schema: resolver(errorSchema) } } }]));
}

type Content = NonNullable<Extract<NonNullable<DescribeRouteOptions['responses']>[string], { description: string }>['content']>;

/** A JSON body described by a zod schema. */
export const json = (schema: ZodType): Content => ({ 'application/json': { schema: resolver(schema) } });
/** A body that is text of `type`. */
export const textBody = (type: string): Content => ({ [type]: { schema: { type: 'string' } } });

export interface RouteDoc {
  tag: 'projects' | 'tasks' | 'runs' | 'actors' | 'events' | 'machines';
  summary: string;
  description?: string;
  /** The success answers: status → what it holds (no content: an empty body). */
  ok: Record<number, { description: string; content?: Content }>;
  /** Error statuses this route answers besides those every `/api` route may (400, 401, 403, 500, 503; 413 and 415 with a body): see openapi.ts. */
  errors?: ErrorStatus[];
  /** A body read without a validator middleware (an optional body). */
  body?: { schema: ZodType; required: boolean };
  /** Query parameters read without a validator middleware. */
  parameters?: DescribeRouteOptions['parameters'];
}

/** A route's entry in `/openapi.json`: `describeRoute` with the envelope for each error status. */
export function describe(d: RouteDoc): MiddlewareHandler {
  const responses: NonNullable<DescribeRouteOptions['responses']> = {};
  for (const [status, answer] of Object.entries(d.ok)) responses[status] = answer;
  for (const status of d.errors ?? []) responses[String(status)] = errorRef(status);
  return describeRoute({
    tags: [d.tag],
    summary: d.summary,
    ...(d.description ? { description: d.description } : {}),
    ...(d.parameters ? { parameters: d.parameters } : {}),
    ...(d.body ? { requestBody: { required: d.body.required, content: json(d.body.schema) } } : {}),
    responses,
  });
}
