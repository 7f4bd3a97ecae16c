/**
 * Troupe on the loop: its own lead and worker statecharts (`leadMachine`, `workerMachine.provide`
 * with the fakes of `work.ts` as effects) hosted by `LeadHost`, and its real persistence path —
 * the lead's guarded batches (`createPersist`, with the snapshots the `SnapshotWriter` has
 * pending), the records the effects write (`createRecords` behind `cachedJournal`: the answer
 * recorded through `callAndRecord`, `files.applied`, test results, corrections), every write
 * fenced by the run's lease (`Leases.fence`) and its events appended through the `Outbox`. The
 * fake effects make the database calls the real ones make and skip only model, files and
 * processes. Not here: the lease heartbeat (one statement a second) and the inspectors.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Anthropic from '@anthropic-ai/sdk';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { fromPromise } from 'xstate';
import { generationKey, checkBudget } from '../../src/actors/model/generate.ts';
import { cachedJournal, callAndRecord } from '../../src/actors/model/journal.ts';
import { FAILURE_OUTPUT_MAX, cutMiddle } from '../../src/actors/model/prompts.ts';
import { parseProposal } from '../../src/actors/model/proposal.ts';
import { LeadHost } from '../../src/actors/runtime/lead-host.ts';
import { settingsOf } from '../../src/actors/runtime/lead-input.ts';
import { createPersist, type RunFence } from '../../src/actors/runtime/lead-writer.ts';
import { LeaseLost, Leases } from '../../src/actors/runtime/leases.ts';
import { ProjectService } from '../../src/actors/runtime/projects.ts';
import { createRecords } from '../../src/actors/runtime/records.ts';
import { taskViewOf } from '../../src/actors/runtime/views.ts';
import { describeTestRun } from '../../src/actors/testing/describe.ts';
import type { CorrectionNote, EffectScope } from '../../src/actors/worker-effects.ts';
import { childEnvFrom } from '../../src/config.ts';
import { schema, type Db, type Store } from '../../src/db/client.ts';
import { migratePostgresUrl } from '../../src/db/migrate.ts';
import { dependencyKeys, tasksOf } from '../../src/db/queries.ts';
import { runs } from '../../src/db/schema.ts';
import { createProjectSchema } from '../../src/domain/inputs.ts';
import { EventBus } from '../../src/events/bus.ts';
import { Outbox } from '../../src/events/outbox.ts';
import { event } from '../../src/events/types.ts';
import { newId } from '../../src/ids.ts';
import { silentLogger } from '../../src/logger.ts';
import { leadMachine, type PreflightInput, type PreflightOutput, type PlanInput, type PlanOutput } from '../../src/machines/lead.ts';
import { testsAccepted, type Job } from '../../src/machines/types.ts';
import {
  workerMachine,
  type ApplyInput,
  type ApplyOutput,
  type CommitInput,
  type CommitOutput,
  type CorrectionInput,
  type GenerateInput,
  type GenerateOutput,
  type PrepareInput,
  type PrepareOutput,
  type TestInput,
  type TestOutput,
} from '../../src/machines/worker.ts';
import { StatementTally } from './statements.ts';
import { POOL_MAX, flushPostgresJs, rowsPostgresJs, answerFor, taskKeys, testResultFor, type Side } from './work.ts';

const MODEL = 'claude-sonnet-4-6';

/** The runtime's Postgres store (`createStore`), with a hook on every statement sent. */
function countingStore(url: string, onStatement: (query: string, params: unknown[]) => void): { store: Store; client: postgres.Sql } {
  const client = postgres(url, { max: POOL_MAX, onnotice: () => undefined, connection: { application_name: 'peers-troupe' }, debug: (_connection, query, params) => onStatement(query, params) });
  const db = drizzle(client, { schema }) as unknown as Db;
  const store: Store = {
    kind: 'postgres',
    db,
    async listen(channel, onNotify, onListen) {
      const sub = await client.listen(channel, onNotify, onListen);
      return () => sub.unlisten();
    },
    migrate: () => migratePostgresUrl(url),
    close: () => client.end({ timeout: 5 }),
  };
  return { store, client };
}

/** A Messages API client that answers once, with `message`: the model is the only thing faked in `callAndRecord`. */
function answering(message: Anthropic.Message): Anthropic {
  return { messages: { create: () => Promise.resolve(message) } } as unknown as Anthropic;
}

function messageFor(key: string, attempt: number): Anthropic.Message {
  return {
    id: `msg_${key}_${attempt}`,
    type: 'message',
    role: 'assistant',
    model: MODEL,
    content: [{ type: 'tool_use', id: `toolu_${key}_${attempt}`, name: 'write_files', input: answerFor(key, attempt) }],
    stop_reason: 'tool_use',
    stop_sequence: null,
    usage: { input_tokens: 1800, output_tokens: 1200, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
  } as Anthropic.Message;
}

const scopeOf = (job: Job, agentId: string): EffectScope => ({ projectId: job.settings.projectId, runId: job.settings.runId, taskId: job.taskId, agentId });

export async function openTroupe(url: string): Promise<Side> {
  const tally = new StatementTally();
  const { store, client } = countingStore(url, (query, params) => tally.add(query, params));
  await store.migrate();
  const bus = new EventBus(store, silentLogger);
  await bus.start();
  const outbox = new Outbox(store, bus);
  const leases = new Leases(store, 30_000);
  // As the runtime's (run-hosting.ts): the lease check rides in the events' append when it can.
  const fence: RunFence = {
    check: (tx, runId) => leases.fence(tx, runId),
    lost: () => undefined,
    rowFence: (runId) => ({ runId, owner: leases.owner, failed: () => new LeaseLost(runId) }),
  };
  const records = createRecords(outbox, fence);
  const journal = cachedJournal(records);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'troupe-peers-'));
  const childEnv = childEnvFrom(process.env);
  const projects = new ProjectService({ outbox, dataDir, sandboxMode: 'none', childEnv });
  const workspace = new Map<string, string>();
  const hosts = new Map<string, LeadHost>();

  // The worker's effects: what the real ones (`createWorkerEffects`) write, without model, files or processes.
  const worker = workerMachine.provide({
    actors: {
      prepare: fromPromise<PrepareOutput, PrepareInput>(async ({ input }) => ({ treePath: input.job.settings.workspace })),
      generate: fromPromise<GenerateOutput, GenerateInput>(async ({ input, signal }) => {
        // As `generateAnswer`: the recorded answer, the budget and the task's text, together; then one paid, recorded call.
        const { job, attempt } = input;
        const callKey = generationKey(job.taskId, job.epoch, attempt);
        const scope = scopeOf(job, input.agentId);
        const [recorded, over, task] = await Promise.all([journal.find(scope.projectId, callKey), checkBudget(records, scope.projectId), records.loadTask(job.taskId)]);
        let message = recorded;
        if (!message) {
          if (over) return { kind: 'budget_exhausted', ...over };
          const params: Anthropic.MessageCreateParamsNonStreaming = {
            model: job.settings.model,
            max_tokens: 16_000,
            messages: [{ role: 'user', content: `${task.title}\n\n${task.description}\n\nattempt ${attempt}: ${input.failure?.summary ?? ''}` }],
          };
          const purpose = attempt > 1 ? 'correct' : 'generate';
          message = await callAndRecord({ client: answering(messageFor(job.key, attempt)), journal }, { ...scope, callKey, purpose, params, signal });
        }
        const proposal = parseProposal(message);
        if (!proposal.ok) return { kind: 'invalid', callKey, reason: proposal.reason };
        return { kind: 'proposal', callKey, fileCount: proposal.files.length };
      }),
      apply: fromPromise<ApplyOutput, ApplyInput>(async ({ input }) => {
        const message = await journal.find(input.job.settings.projectId, input.callKey);
        const proposal = message ? parseProposal(message) : null;
        if (!proposal?.ok) return { kind: 'rejected', reason: 'the recorded answer is missing' };
        const applied = proposal.files.map((f) => {
          workspace.set(f.path, f.content ?? '');
          return { path: f.path, action: f.action, bytes: (f.content ?? '').length };
        });
        await records.filesApplied(scopeOf(input.job, input.agentId), input.attempt, applied, proposal.explanation ?? '');
        return { kind: 'applied', files: applied.map((f) => f.path) };
      }),
      test: fromPromise<TestOutput, TestInput>(async ({ input }) => {
        const { job } = input;
        const result = testResultFor(input.attempt);
        const accepted = testsAccepted(result.status, input.agentType);
        const correction: CorrectionNote | undefined =
          input.attempt > 1 && accepted ? { attempt: input.attempt - 1, maxAttempts: job.settings.maxCorrections, status: 'succeeded' } : undefined;
        await records.testResult(scopeOf(job, input.agentId), job.epoch, input.attempt, result, result.status === 'passed', correction);
        return { status: result.status, summary: describeTestRun(result), excerpt: cutMiddle(result.output, FAILURE_OUTPUT_MAX) };
      }),
      correct: fromPromise<void, CorrectionInput>(async ({ input }) => {
        const max = input.job.settings.maxCorrections;
        const notes: CorrectionNote[] = [];
        if (input.correction > 1) notes.push({ attempt: input.correction - 1, maxAttempts: max, status: 'failed', errorSummary: input.failure.summary });
        notes.push({ attempt: input.correction, maxAttempts: max, status: 'started', errorSummary: input.failure.summary });
        await records.corrections(scopeOf(input.job, input.agentId), input.job.epoch, notes);
      }),
      // Shared mode in a plain directory: nothing to commit (as `commit` there), no git process.
      commit: fromPromise<CommitOutput, CommitInput>(async ({ input }) => ({ kind: 'committed', sha: null, files: input.files })),
    },
  });
  const machine = leadMachine.provide({
    actors: {
      worker,
      persist: createPersist(outbox, async (input) => hosts.get(input.projectId)?.takeSnapshots(input), fence),
      preflight: fromPromise<PreflightOutput, PreflightInput>(async () => ({ kind: 'ready', baseline: null })),
      plan: fromPromise<PlanOutput, PlanInput>(async () => ({ kind: 'invalid', reason: 'no planning in this benchmark' })),
    },
  });

  /** A project with `tasks` independent tasks, made through the service (not timed). */
  const project = async (round: number, tasks: number, concurrency: number) => {
    const created = await projects.create(
      createProjectSchema.parse({
        name: `peers-${round}`,
        testCommand: ['true'],
        workspace: dataDir,
        config: { maxConcurrency: concurrency, maxAgents: concurrency, maxCorrectionAttempts: 3, sandbox: { mode: 'none' }, models: { backend: MODEL } },
      }),
    );
    await projects.addTasks(
      created.id,
      taskKeys(round, tasks).map((key) => ({ key, title: `task ${key}`, description: `the loop of ${key}`, agentType: 'backend' as const, dependsOn: [], priority: 2 })),
      null,
    );
    return projects.row(created.id);
  };

  let prepared: Awaited<ReturnType<typeof project>> | null = null;
  return {
    async prepare(round, tasks, concurrency) {
      prepared = await project(round, tasks, concurrency);
    },
    async run(round, tasks, concurrency) {
      workspace.clear();
      const row = prepared ?? (await project(round, tasks, concurrency));
      prepared = null;
      const mark = tally.mark();
      const before = tally.total;
      const started = performance.now();
      // As the runtime starts a run: the run row (owned by this process) and `run.started`; then its lead.
      const runId = newId('run');
      await outbox.transact(async (tx, emit) => {
        await tx.insert(runs).values({ id: runId, projectId: row.id, status: 'running', ...leases.fresh() });
        emit(event('run.started', { status: 'running' }, { projectId: row.id, runId }));
      });
      const [taskRows, deps] = await Promise.all([tasksOf(store.db, row.id), dependencyKeys(store.db, row.id)]);
      const host = new LeadHost({
        machine,
        outbox,
        logger: silentLogger,
        fence,
        input: { projectId: row.id, runId, start: 'running', goal: null, settings: settingsOf(row), tasks: taskRows.map((r) => taskViewOf(r, deps.get(r.id) ?? [])) },
      });
      hosts.set(row.id, host);
      host.start();
      await host.ended;
      const ms = performance.now() - started;
      const count = tally.total - before;
      const end = host.runStatus();
      hosts.delete(row.id);
      await host.stop();
      if (end !== 'completed') throw new Error(`troupe run ended ${end}`);
      return { ms, statements: count, detail: tally.since(mark) };
    },
    flushStats: () => flushPostgresJs(client),
    rows: () => rowsPostgresJs(client, 'public'),
    async close() {
      await outbox.drain();
      await bus.stop();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

