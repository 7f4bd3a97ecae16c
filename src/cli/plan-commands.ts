/**
 * `troupe run PLAN.json` and `troupe demo`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { bwrapAvailable } from '../actors/testing/sandbox.ts';
import type { Config } from '../config.ts';
import { checkGraph, type GraphProblem } from '../domain/graph.ts';
import { issuesOf, planFileSchema } from '../domain/inputs.ts';
import { TroupeError } from '../errors.ts';
import { createLogger } from '../logger.ts';
import { DEMO_GOAL, demoResponder } from '../scripted-model/demo-script.ts';
import { startScriptedModel } from '../scripted-model/server.ts';
import { formatSummary, runLocally, type LocalRunResult, type Plan } from './local-run.ts';
import type { ProgressMode } from './progress.ts';
import { UsageError } from './usage-error.ts';

/** A plan file, validated: every problem names its field (`tasks.0.key: …`). */
export async function readPlan(file: string): Promise<Plan> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read the plan ${file}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  const parsed = planFileSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = issuesOf(parsed.error).map((i) => `  ${i.path}: ${i.message}`);
    throw new UsageError(`${file} is not a valid plan:\n${problems.join('\n')}`);
  }
  const tasks = parsed.data.tasks ?? [];
  if (!parsed.data.goal && tasks.length === 0) throw new UsageError(`${file} has no tasks and no goal: nothing to do`);
  // The graph too, before anything is created: a cycle or an unknown dependency needs no database to be found.
  const problem = checkGraph(tasks);
  if (problem) throw new UsageError(`${file} is not a valid plan:\n  ${graphField(problem, tasks)}: ${problem.message}`);
  return parsed.data;
}

/** The field a graph problem is about: `tasks.3.dependsOn`, `tasks.1.key`, or `tasks` for a cycle. */
function graphField(problem: GraphProblem, tasks: readonly { key: string }[]): string {
  if (problem.kind === 'cycle') return 'tasks';
  const at = tasks.findIndex((t) => t.key === problem.key);
  // A duplicate key is reported at its second use.
  const index = problem.kind === 'duplicate_key' ? tasks.findLastIndex((t) => t.key === problem.key) : at;
  return `tasks.${index}.${problem.kind === 'duplicate_key' ? 'key' : 'dependsOn'}`;
}

/** Ctrl-C once: cancel the run cleanly. Twice: leave at once. */
function interruptOnSigint(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write('\ncancelling the run (Ctrl-C again to quit at once)…\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigint);
    },
  };
}

async function runPlan(plan: Plan, client: Anthropic, config: Config, json: boolean): Promise<LocalRunResult> {
  const mode: ProgressMode = json ? 'json' : process.stdout.isTTY ? 'tty' : 'plain';
  const interrupt = interruptOnSigint();
  try {
    return await runLocally({
      plan,
      client,
      mode,
      logger: createLogger(config.logLevel === 'info' ? 'error' : config.logLevel),
      databaseUrl: config.databaseUrl,
      env: config.env,
      out: process.stdout,
      interrupt: interrupt.signal,
      sandboxMode: config.sandboxMode,
    });
  } catch (e) {
    // A plan the service would refuse (a cycle, an unknown dependency, a bad workspace) is bad input.
    if (e instanceof TroupeError && e.status < 500 && e.code !== 'conflict') {
      const details = Array.isArray(e.details) ? (e.details as { path: string; message: string }[]).map((d) => `\n  ${d.path}: ${d.message}`).join('') : '';
      throw new UsageError(`${e.message}${details}`);
    }
    throw e;
  } finally {
    interrupt.dispose();
  }
}

export async function runCommand(file: string, options: { workspace?: string | undefined; json: boolean }, config: Config): Promise<number> {
  const plan = await readPlan(file);
  if (options.workspace !== undefined) plan.workspace = path.resolve(options.workspace);
  else if (plan.workspace !== undefined) plan.workspace = path.resolve(path.dirname(path.resolve(file)), plan.workspace);
  // The SDK reads ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL itself.
  const client = new Anthropic({ maxRetries: config.model.maxRetries, timeout: config.model.timeoutMs });
  const result = await runPlan(plan, client, config, options.json);
  (options.json ? process.stderr : process.stdout).write(formatSummary(result));
  return result.exitCode;
}

export async function demoCommand(config: Config, json: boolean): Promise<number> {
  // The bundled scripted model on loopback: the real SDK, pointed at it with explicit options, so
  // whatever ANTHROPIC_* says, nothing leaves this machine.
  const model = await startScriptedModel(demoResponder);
  try {
    const client = new Anthropic({ baseURL: model.url, apiKey: 'demo-offline', maxRetries: 0 });
    const out = json ? process.stderr : process.stdout;
    out.write(`Troupe demo — offline, with a scripted model on ${model.url}\nGoal: ${DEMO_GOAL}\n`);
    // The sandbox when this machine has one; the demo still runs (unconfined, and says so) without.
    const sandboxed = config.sandboxMode === 'bwrap' && (await bwrapAvailable());
    if (!sandboxed) {
      const why = config.sandboxMode === 'none' ? 'TROUPE_SANDBOX=none' : 'bubblewrap is not available here (apt-get install bubblewrap)';
      out.write(`Tests run without the sandbox: ${why}.\n`);
    }
    out.write('\n');
    const sandbox = { mode: sandboxed ? ('bwrap' as const) : ('none' as const) };
    const result = await runPlan({ name: 'textkit (demo)', testCommand: ['node', '--test'], goal: DEMO_GOAL, config: { sandbox } }, client, config, json);
    out.write(formatSummary(result));
    out.write(
      [
        '',
        'See the same thing in the service:',
        '  npm start                        # or: npx troupe serve --inspect  (then open http://localhost:8080)',
        '  curl -N localhost:3000/api/events  # every event, live',
        `Run the demo's tests yourself:  cd ${result.workspace} && node --test`,
        '',
      ].join('\n'),
    );
    return result.exitCode;
  } finally {
    await model.close();
  }
}
