/**
 * Orchestration overhead: the same random DAG run by Troupe and by the baseline pool (same I/O),
 * model latency 0 and a trivial test command, so what remains is what the runtime adds.
 */
import { runs } from '../src/db/schema.ts';
import { childEnvFrom } from '../src/config.ts';
import { newId } from '../src/ids.ts';
import { Outbox } from '../src/events/outbox.ts';
import { EventBus } from '../src/events/bus.ts';
import { silentLogger } from '../src/logger.ts';
import { runBaseline } from './baseline.ts';
import { layeredDag } from './dag.ts';
import { benchClient, benchModel, benchProject, benchRuntime, openStore, plainWorkspace, round, timeRun, type DbKind } from './harness.ts';

export interface OverheadResult {
  db: DbKind;
  tasks: number;
  width: number;
  troupeMs: number;
  baselineMs: number;
  ratio: number;
  overheadPerTaskMs: number;
}

const TEST_COMMAND = ['true'];
const MODEL = 'claude-sonnet-4-6';

export async function overhead(db: DbKind, n: number, width: number, repeats = 2): Promise<OverheadResult> {
  const opened = await openStore(db);
  const { store } = opened;
  const model = await benchModel(0);
  const client = benchClient(model);
  const tasks = layeredDag(n, width);
  const concurrency = Math.min(width, 64);
  const troupe: number[] = [];
  const baseline: number[] = [];
  try {
    for (let r = 0; r < repeats; r++) {
      // Baseline first, then Troupe, alternately: neither side always gets the warmer process.
      baseline.push(await baselineOnce(store, client, tasks, concurrency, r));
      troupe.push(await troupeOnce(store, client, tasks, concurrency, r));
    }
  } finally {
    await model.close();
    await opened.close();
  }
  const t = Math.min(...troupe);
  const b = Math.min(...baseline);
  return { db, tasks: n, width, troupeMs: round(t), baselineMs: round(b), ratio: round(t / b, 3), overheadPerTaskMs: round((t - b) / n, 3) };
}

async function troupeOnce(store: Parameters<typeof benchRuntime>[0], client: ReturnType<typeof benchClient>, tasks: ReturnType<typeof layeredDag>, concurrency: number, r: number): Promise<number> {
  const b = await benchRuntime(store, client);
  const ws = await plainWorkspace();
  try {
    const projectId = await benchProject(
      b.runtime,
      { name: `overhead-troupe-${r}`, testCommand: TEST_COMMAND, workspace: ws.path, config: { maxConcurrency: concurrency, maxAgents: 64, maxCorrectionAttempts: 0, models: { backend: MODEL } } },
      tasks,
    );
    const { ms, end } = await timeRun(b, projectId);
    if (end !== 'run.completed') {
      const stuck = (await b.runtime.listTasks(projectId)).filter((t) => t.status !== 'completed').slice(0, 3);
      const log = await b.runtime.eventLog(projectId, 0, 1000, ['task.status_changed']);
      const reasons = log.events.map((e) => e.data as { to: string; reason?: string }).filter((d) => d.reason).slice(0, 3);
      throw new Error(`troupe run ended ${end}: ${JSON.stringify(stuck.map((t) => [t.key, t.status, t.blockedReason]))} ${JSON.stringify(reasons)}`);
    }
    return ms;
  } finally {
    await b.close();
    await ws.close();
  }
}

async function baselineOnce(store: Parameters<typeof benchRuntime>[0], client: ReturnType<typeof benchClient>, tasks: ReturnType<typeof layeredDag>, concurrency: number, r: number): Promise<number> {
  // The runtime only creates the project and its tasks (the same rows); the pool does the rest.
  const b = await benchRuntime(store, client);
  const ws = await plainWorkspace();
  const bus = new EventBus(store, silentLogger);
  try {
    const projectId = await benchProject(b.runtime, { name: `overhead-baseline-${r}`, testCommand: TEST_COMMAND, workspace: ws.path }, tasks);
    const runId = newId('run');
    await store.db.insert(runs).values({ id: runId, projectId, status: 'running' });
    await bus.start();
    return await runBaseline({
      outbox: new Outbox(store, bus),
      client,
      projectId,
      runId,
      workspace: ws.path,
      testCommand: TEST_COMMAND,
      concurrency,
      childEnv: childEnvFrom(process.env),
      model: MODEL,
    });
  } finally {
    await bus.stop();
    await b.close();
    await ws.close();
  }
}
