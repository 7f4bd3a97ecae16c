/**
 * A real runtime for integration tests: the suite's database (PGlite or Postgres), the real
 * Anthropic SDK pointed at a scripted Messages API on loopback, real git and real test runs.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { Runtime } from '../../src/actors/runtime/runtime.ts';
import { childEnvFrom } from '../../src/config.ts';
import type { Store } from '../../src/db/client.ts';
import { createProjectSchema, type CreateProjectInput, type TaskInput } from '../../src/domain/inputs.ts';
import { EventBus } from '../../src/events/bus.ts';
import type { TroupeEvent } from '../../src/events/types.ts';
import { silentLogger } from '../../src/logger.ts';
import { startScriptedModel, type Responder, type ScriptedModel } from '../../src/scripted-model/server.ts';
import { createTestStore } from './db.ts';

export interface TestRuntime {
  store: Store;
  bus: EventBus;
  runtime: Runtime;
  model: ScriptedModel;
  dataDir: string;
  /** Creates a project from a contract create body (validated like the HTTP edge does). */
  project(body: CreateProjectInput): Promise<string>;
  addTasks(projectId: string, tasks: (Omit<TaskInput, 'dependsOn' | 'priority'> & Partial<TaskInput>)[]): Promise<void>;
  /** Resolves with the first event of the project (replayed or live) that matches. */
  waitForEvent(projectId: string, match: (e: TroupeEvent) => boolean): Promise<TroupeEvent>;
  /** Resolves with the run's final event (completed, blocked, cancelled or failed). */
  runEnd(projectId: string, runId: string): Promise<TroupeEvent>;
  events(projectId: string): Promise<TroupeEvent[]>;
  close(): Promise<void>;
}

export async function startTestRuntime(respond: Responder, opts: { maxRetries?: number; timeoutMs?: number } = {}): Promise<TestRuntime> {
  const store = await createTestStore();
  const model = await startScriptedModel(respond);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'troupe-it-'));
  const bus = new EventBus(store, silentLogger);
  const client = new Anthropic({ baseURL: model.url, apiKey: 'sk-test-not-a-secret', maxRetries: opts.maxRetries ?? 2 });
  const runtime = new Runtime({
    store,
    bus,
    logger: silentLogger,
    client,
    dataDir,
    childEnv: childEnvFrom(process.env),
    modelTimeoutMs: opts.timeoutMs,
    resume: false,
  });
  await runtime.start();

  const waitForEvent = (projectId: string, match: (e: TroupeEvent) => boolean) =>
    new Promise<TroupeEvent>((resolve, reject) => {
      const sub = bus.subscribe({ projectId, fromSeq: 0 }, (e) => {
        if (!match(e)) return;
        sub.close();
        resolve(e);
      });
      sub.ready.catch(reject);
    });

  return {
    store,
    bus,
    runtime,
    model,
    dataDir,
    async project(body) {
      const project = await runtime.createProject(createProjectSchema.parse(body));
      return project.id;
    },
    async addTasks(projectId, tasks) {
      await runtime.addTasks(
        projectId,
        tasks.map((t) => ({ dependsOn: [], priority: 2, ...t })),
      );
    },
    waitForEvent,
    runEnd: (projectId, runId) =>
      waitForEvent(projectId, (e) => e.runId === runId && ['run.completed', 'run.blocked', 'run.cancelled', 'run.failed'].includes(e.type)),
    async events(projectId) {
      const out: TroupeEvent[] = [];
      const sub = bus.subscribe({ projectId, fromSeq: 0 }, (e) => out.push(e));
      await sub.ready;
      sub.close();
      return out;
    },
    async close() {
      await runtime.stop();
      await bus.stop();
      await model.close();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
