/**
 * One `pg-core` schema for Postgres (postgres.js) and PGlite. Postgres is the source of truth:
 * statuses, the event log, every model answer and the actors' persisted snapshots live here.
 */
import { sql } from 'drizzle-orm';
import type { TaskReview } from '../events/types.ts';
import {
  bigserial,
  boolean,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();
const updatedAt = () => timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();

export const projects = pgTable('projects', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  workspace: text('workspace').notNull(),
  testCommand: jsonb('test_command').$type<string[]>().notNull(),
  goal: text('goal'),
  config: jsonb('config').$type<Record<string, unknown>>().notNull(),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

export const tasks = pgTable(
  'tasks',
  {
    id: text('id').primaryKey(),
    projectId: text('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    /** Insertion order inside the project: "age" when priorities tie. */
    ordinal: bigserial('ordinal', { mode: 'number' }).notNull(),
    key: text('key').notNull(),
    title: text('title').notNull(),
    description: text('description').notNull(),
    agentType: text('agent_type').notNull(),
    priority: integer('priority').notNull(),
    status: text('status').notNull(),
    blockedReason: text('blocked_reason'),
    /** Why a task failed or was blocked, in words. */
    reason: text('reason'),
    agentId: text('agent_id'),
    attempts: integer('attempts').notNull().default(0),
    /** Bumped by every retry: model answers are recorded per (task, epoch, attempt). */
    epoch: integer('epoch').notNull().default(0),
    guidance: text('guidance'),
    commit: text('commit'),
    filesChanged: jsonb('files_changed').$type<string[]>().notNull().default([]),
    verified: boolean('verified'),
    /** While (or since) the task waited for a person: why, which files, after which attempt. */
    review: jsonb('review').$type<TaskReview>(),
    createdAt: createdAt(),
    startedAt: timestamp('started_at', { withTimezone: true, mode: 'date' }),
    completedAt: timestamp('completed_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [uniqueIndex('tasks_project_key').on(t.projectId, t.key), index('tasks_project_status').on(t.projectId, t.status)],
);

export const taskDependencies = pgTable(
  'task_dependencies',
  {
    taskId: text('task_id')
      .notNull()
      .references(() => tasks.id, { onDelete: 'cascade' }),
    dependsOnId: text('depends_on_id')
      .notNull()
      .references(() => tasks.id, { onDelete: 'cascade' }),
  },
  (t) => [primaryKey({ columns: [t.taskId, t.dependsOnId] }), index('task_deps_depends_on').on(t.dependsOnId)],
);

export const runs = pgTable(
  'runs',
  {
    id: text('id').primaryKey(),
    projectId: text('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    status: text('status').notNull(),
    summary: text('summary'),
    startedAt: timestamp('started_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    endedAt: timestamp('ended_at', { withTimezone: true, mode: 'date' }),
    updatedAt: updatedAt(),
    /** The process executing the run (a lease renewed by heartbeat; see runtime/leases.ts). */
    owner: text('owner'),
    leaseExpiresAt: timestamp('lease_expires_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [
    index('runs_project_started').on(t.projectId, t.startedAt),
    // One active run per project, enforced by the database (architecture rule 6).
    uniqueIndex('runs_one_active_per_project')
      .on(t.projectId)
      .where(sql`status in ('planning', 'running', 'pausing', 'paused')`),
  ],
);

export const agents = pgTable(
  'agents',
  {
    projectId: text('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    runId: text('run_id')
      .notNull()
      .references(() => runs.id, { onDelete: 'cascade' }),
    agentId: text('agent_id').notNull(),
    kind: text('kind').notNull(),
    agentType: text('agent_type'),
    retiredAt: timestamp('retired_at', { withTimezone: true, mode: 'date' }),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.runId, t.agentId] })],
);

export const events = pgTable(
  'events',
  {
    seq: bigserial('seq', { mode: 'number' }).primaryKey(),
    projectId: text('project_id').notNull(),
    runId: text('run_id'),
    taskId: text('task_id'),
    agentId: text('agent_id'),
    type: text('type').notNull(),
    data: jsonb('data').$type<Record<string, unknown>>().notNull(),
    at: timestamp('at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    /**
     * On the first event of a write that may be replayed (a retry after a lost commit
     * acknowledgement): the replay finds it taken and knows the write already committed.
     */
    writeKey: text('write_key'),
  },
  // No foreign key to projects: the log outlives a deleted project's rows.
  (t) => [
    index('events_project_seq').on(t.projectId, t.seq),
    uniqueIndex('events_write_key').on(t.writeKey).where(sql`write_key is not null`),
  ],
);

export const testResults = pgTable(
  'test_results',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    projectId: text('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    /** Null for a baseline run, which belongs to the project's base tree, not to a task. */
    taskId: text('task_id').references(() => tasks.id, { onDelete: 'cascade' }),
    runId: text('run_id'),
    agentId: text('agent_id'),
    epoch: integer('epoch').notNull(),
    attempt: integer('attempt').notNull(),
    /** `baseline` (the base tree before any change), `task` (an attempt) or `merge` (the rebased tree). */
    phase: text('phase').notNull().default('task'),
    /** The commit tested, for a baseline (its cache key); null otherwise. */
    commit: text('commit'),
    status: text('status').notNull(),
    /** One line: "2 failed, 10 passed", "timed out after 300000 ms" (null in rows from before it was kept). */
    summary: text('summary'),
    /** Counts are null when the runner's output was not understood. */
    passed: integer('passed'),
    failed: integer('failed'),
    errors: integer('errors'),
    skipped: integer('skipped'),
    total: integer('total'),
    /** Failing tests the output named: `[{name, message}]`. */
    failures: jsonb('failures').$type<{ name: string; message: string | null }[]>().notNull().default([]),
    exitCode: integer('exit_code'),
    durationMs: integer('duration_ms').notNull(),
    verified: boolean('verified').notNull(),
    /** How the command was confined: `bwrap` or `none` (rows from before sandboxing: `none`). */
    sandbox: text('sandbox').notNull().default('none'),
    /** Capped, secrets-free output of the test command. */
    output: text('output').notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('test_results_task').on(t.taskId, t.epoch, t.attempt), index('test_results_baseline').on(t.projectId, t.commit).where(sql`phase = 'baseline'`)],
);

export const corrections = pgTable(
  'corrections',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    projectId: text('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    taskId: text('task_id')
      .notNull()
      .references(() => tasks.id, { onDelete: 'cascade' }),
    runId: text('run_id'),
    epoch: integer('epoch').notNull(),
    /** Correction number, 1…maxAttempts. */
    attempt: integer('attempt').notNull(),
    status: text('status').notNull(),
    errorSummary: text('error_summary'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex('corrections_task_epoch_attempt').on(t.taskId, t.epoch, t.attempt)],
);

export const modelCalls = pgTable(
  'model_calls',
  {
    id: text('id').primaryKey(),
    projectId: text('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    runId: text('run_id'),
    taskId: text('task_id'),
    agentId: text('agent_id'),
    /** Logical identity of the call (`gen:<task>:<epoch>:<attempt>`, `plan:<run>`): pay once. */
    callKey: text('call_key').notNull(),
    purpose: text('purpose').notNull(),
    model: text('model').notNull(),
    requestHash: text('request_hash').notNull(),
    response: jsonb('response').$type<Record<string, unknown>>().notNull(),
    inputTokens: integer('input_tokens').notNull(),
    outputTokens: integer('output_tokens').notNull(),
    cacheReadTokens: integer('cache_read_tokens').notNull(),
    cacheWriteTokens: integer('cache_write_tokens').notNull(),
    /** Null when the model has no price: unknown is not free. */
    costUsd: doublePrecision('cost_usd'),
    durationMs: integer('duration_ms').notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('model_calls_project_key').on(t.projectId, t.callKey), index('model_calls_task').on(t.taskId)],
);

export const actorSnapshots = pgTable(
  'actor_snapshots',
  {
    runId: text('run_id')
      .notNull()
      .references(() => runs.id, { onDelete: 'cascade' }),
    actorId: text('actor_id').notNull(),
    projectId: text('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    kind: text('kind').notNull(),
    agentType: text('agent_type'),
    machine: text('machine').notNull(),
    machineVersion: integer('machine_version').notNull(),
    state: jsonb('state').$type<unknown>().notNull(),
    status: text('status').notNull(),
    taskId: text('task_id'),
    attempt: integer('attempt'),
    snapshot: jsonb('snapshot').$type<unknown>().notNull(),
    updatedAt: updatedAt(),
  },
  (t) => [primaryKey({ columns: [t.runId, t.actorId] }), index('actor_snapshots_project').on(t.projectId)],
);

/**
 * Control requests carried to the process that owns a run (any process answers any control
 * request): the caller inserts a row and NOTIFYs, the owner executes it and writes the answer.
 */
export const controlRequests = pgTable(
  'control_requests',
  {
    id: text('id').primaryKey(),
    projectId: text('project_id')
      .notNull()
      .references(() => projects.id, { onDelete: 'cascade' }),
    runId: text('run_id').notNull(),
    /** The owner the request was addressed to (`runs.owner` when it was sent). */
    owner: text('owner').notNull(),
    /** `pause`, `resume`, `cancel`, `retry`, `cancel_task`, `approve`, `reject`, … */
    action: text('action').notNull(),
    args: jsonb('args').$type<Record<string, unknown>>().notNull().default({}),
    /** `pending` until the owner answers, then `answered`. */
    status: text('status').notNull().default('pending'),
    /** The HTTP status the owner answered with, and its body. */
    answerStatus: integer('answer_status'),
    answer: jsonb('answer').$type<unknown>(),
    createdAt: createdAt(),
    answeredAt: timestamp('answered_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [index('control_requests_owner_status').on(t.owner, t.status)],
);
