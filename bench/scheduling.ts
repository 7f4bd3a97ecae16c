/**
 * Scheduling efficiency: with a model that takes `latencyMs` per answer and `maxConcurrency`
 * tasks at a time, how close is the run's makespan to its lower bound
 * max(critical path, total work / concurrency)? A task's work is the model latency plus its test
 * run (measured alone, beforehand); everything else is the scheduler's and the runtime's doing.
 */
import { runTests } from '../src/actors/testing/run-tests.ts';
import { childEnvFrom } from '../src/config.ts';
import { criticalPath, layeredDag } from './dag.ts';
import { benchClient, benchModel, benchProject, benchRuntime, openStore, plainWorkspace, round, timeRun, type DbKind } from './harness.ts';

export interface SchedulingResult {
  db: DbKind;
  tasks: number;
  width: number;
  concurrency: number;
  latencyMs: number;
  criticalPath: number;
  taskWorkMs: number;
  lowerBoundMs: number;
  makespanMs: number;
  ratio: number;
}

const TEST_COMMAND = ['true'];

export async function scheduling(db: DbKind, n: number, width: number, concurrency: number, latencyMs: number): Promise<SchedulingResult> {
  const tasks = layeredDag(n, width, 7);
  const work = latencyMs + (await testRunMs());
  const path = criticalPath(tasks);
  const bound = Math.max(path * work, (n * work) / concurrency);
  const opened = await openStore(db);
  const model = await benchModel(latencyMs);
  const b = await benchRuntime(opened.store, benchClient(model));
  const ws = await plainWorkspace();
  try {
    const projectId = await benchProject(
      b.runtime,
      { name: 'scheduling', testCommand: TEST_COMMAND, workspace: ws.path, config: { maxConcurrency: concurrency, maxAgents: concurrency, maxCorrectionAttempts: 0 } },
      tasks,
    );
    const { ms, end } = await timeRun(b, projectId);
    if (end !== 'run.completed') throw new Error(`the scheduling run ended ${end}`);
    return {
      db,
      tasks: n,
      width,
      concurrency,
      latencyMs,
      criticalPath: path,
      taskWorkMs: round(work),
      lowerBoundMs: round(bound),
      makespanMs: round(ms),
      ratio: round(ms / bound, 3),
    };
  } finally {
    await b.close();
    await ws.close();
    await model.close();
    await opened.close();
  }
}

/** Median wall time of the trivial test command, the non-model part of a task's work. */
async function testRunMs(): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 9; i++) {
    const r = await runTests({ argv: TEST_COMMAND, cwd: process.cwd(), env: childEnvFrom(process.env), timeoutMs: 10_000 });
    times.push(r.durationMs);
  }
  return times.sort((a, b) => a - b)[4]!;
}
