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
  /** Stops this runtime (as a shutdown would) and starts a new one on the same data, resuming runs. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export interface TestRuntimeOptions {
  maxRetries?: number;
  timeoutMs?: number;
  /** A database of its own (needed by tests that resume runs). */
  isolated?: boolean;
  workspaceRoot?: string;
  /** Environment of test commands and git (default: the allowlist of this process's env). */
  childEnv?: Record<string, string>;
}

export async function startTestRuntime(respond: Responder, opts: TestRuntimeOptions = {}): Promise<TestRuntime> {
  const store = await createTestStore({ isolated: opts.isolated });
  const model = await startScriptedModel(respond);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'troupe-it-'));
  const client = new Anthropic({ baseURL: model.url, apiKey: 'sk-test-not-a-secret', maxRetries: opts.maxRetries ?? 2 });
  const boot = async (resume: boolean) => {
    const bus = new EventBus(store, silentLogger);
    const runtime = new Runtime({
      store,
      bus,
      logger: silentLogger,
      client,
      dataDir,
      childEnv: opts.childEnv ?? childEnvFrom(process.env),
      modelTimeoutMs: opts.timeoutMs,
      workspaceRoot: opts.workspaceRoot,
      resume,
    });
    await runtime.start();
    return { bus, runtime };
  };
  let { bus, runtime } = await boot(false);

  const waitForEvent = (projectId: string, match: (e: TroupeEvent) => boolean) =>
    new Promise<TroupeEvent>((resolve, reject) => {
      const sub = current.bus.subscribe({ projectId, fromSeq: 0 }, (e) => {
        if (!match(e)) return;
        sub.close();
        resolve(e);
      });
      sub.ready.catch(reject);
    });

  const current = {
    store,
    get bus() {
      return bus;
    },
    get runtime() {
      return runtime;
    },
    model,
    dataDir,
    async project(body: CreateProjectInput) {
      const project = await runtime.createProject(createProjectSchema.parse(body));
      return project.id;
    },
    async addTasks(projectId: string, tasks: Parameters<TestRuntime['addTasks']>[1]) {
      await runtime.addTasks(
        projectId,
        tasks.map((t) => ({ dependsOn: [], priority: 2, ...t })),
      );
    },
    waitForEvent,
    runEnd: (projectId: string, runId: string) =>
      waitForEvent(projectId, (e) => e.runId === runId && ['run.completed', 'run.blocked', 'run.cancelled', 'run.failed'].includes(e.type)),
    async events(projectId: string) {
      const out: TroupeEvent[] = [];
      const sub = bus.subscribe({ projectId, fromSeq: 0 }, (e) => out.push(e));
      await sub.ready;
      sub.close();
      return out;
    },
    async restart() {
      await runtime.stop();
      await bus.stop();
      ({ bus, runtime } = await boot(true));
    },
    async close() {
      await runtime.stop();
      await bus.stop();
      await model.close();
      // A test may have closed the store itself (fault injection).
      await store.close().catch(() => undefined);
      // An effect that does not take an abort (a blocked task's last git commit and tree removal) may still
      // be finishing in the data dir: rm retries ENOTEMPTY instead of failing the file.
      await rm(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    },
  };
  return current;
}
