/**
 * Scheduling efficiency: with a model that takes `latencyMs` per answer and `maxConcurrency`
 * tasks at a time, how close is the run's makespan to its lower bound
 * max(critical path, total work / concurrency)? A task's work is the model latency plus its test
 * run (measured alone, beforehand, in the sandbox the run uses: bubblewrap when it works here);
 * everything else is the scheduler's and the runtime's doing.
 */
import { runTests, type TestSandbox } from '../src/actors/testing/run-tests.ts';
import { bwrapAvailable } from '../src/actors/testing/sandbox.ts';
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
  /** The test run alone, as the run does it, and without a sandbox (ms, median). */
  testRunMs: number;
  bareTestRunMs: number;
  sandbox: TestSandbox['mode'];
  /** The ratio with the test run's work counted without its sandbox (the figure before issue 14). */
  ratioBareTest: number;
}

/** Makespan ÷ bound at most (issue 14: at 200 ms model latency, on an idle machine). */
export const SCHEDULING_TARGET: Record<DbKind, number> = { postgres: 1.1, pglite: 1.15 };

const TEST_COMMAND = ['true'];

export async function scheduling(db: DbKind, n: number, width: number, concurrency: number, latencyMs: number): Promise<SchedulingResult> {
  const tasks = layeredDag(n, width, 7);
  // The project's default sandbox (bwrap) where bubblewrap works, as the run's preflight decides.
  const sandbox: TestSandbox = { mode: (await bwrapAvailable()) ? 'bwrap' : 'none', network: false };
  const [testMs, bareTestMs] = [await testRunMs(sandbox), await testRunMs({ mode: 'none', network: false })];
  const work = latencyMs + testMs;
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
      testRunMs: round(testMs),
      bareTestRunMs: round(bareTestMs),
      sandbox: sandbox.mode,
      ratioBareTest: round(ms / Math.max(path * (latencyMs + bareTestMs), (n * (latencyMs + bareTestMs)) / concurrency), 3),
    };
  } finally {
    await b.close();
    await ws.close();
    await model.close();
    await opened.close();
  }
}

/** Median wall time of the trivial test command, the non-model part of a task's work. */
async function testRunMs(sandbox: TestSandbox): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 9; i++) {
    const r = await runTests({ argv: TEST_COMMAND, cwd: process.cwd(), env: childEnvFrom(process.env), timeoutMs: 10_000, sandbox });
    times.push(r.durationMs);
  }
  return times.sort((a, b) => a - b)[4]!;
}
