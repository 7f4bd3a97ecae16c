/**
 * One plan, run in this process: a runtime over PGlite in a temporary directory (or
 * DATABASE_URL), live progress, Ctrl-C cancels cleanly, a summary at the end. Used by
 * `troupe run` and `troupe demo`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Anthropic from '@anthropic-ai/sdk';
import { Runtime } from '../actors/runtime/runtime.ts';
import type { TaskJson } from '../actors/runtime/views.ts';
import { childEnvFrom } from '../config.ts';
import { lockDataDir } from '../datadir-lock.ts';
import { createStore, type Store } from '../db/client.ts';
import type { planFileSchema } from '../domain/inputs.ts';
import { coerceError } from '../errors.ts';
import { EventBus } from '../events/bus.ts';
import type { TroupeEvent } from '../events/types.ts';
import type { Logger } from '../logger.ts';
import { ProgressView, type ProgressMode } from './progress.ts';
import type { z } from 'zod';

export type Plan = z.output<typeof planFileSchema>;

export interface LocalRunOptions {
  plan: Plan;
  client: Anthropic;
  mode: ProgressMode;
  logger: Logger;
  databaseUrl?: string | undefined;
  /** The environment the process was started with (its allowlist reaches the test commands). */
  env: NodeJS.ProcessEnv;
  out: NodeJS.WriteStream;
  /** Fires when the user asks to stop (Ctrl-C): the run is cancelled cleanly. */
  interrupt: AbortSignal;
  /** `config.sandbox.mode` when the plan does not say (`TROUPE_SANDBOX`). */
  sandboxMode?: 'bwrap' | 'none' | undefined;
}

export interface LocalRunResult {
  /** 0 every task completed, 1 blocked or failed, 130 cancelled. */
  exitCode: number;
  runStatus: string;
  summary: string;
  workspace: string;
  tasks: TaskJson[];
  totals: { inputTokens: number; outputTokens: number; costUsd: number | null };
}

/** Runs the plan to its end. Throws a `TroupeError` (validation, 422) for a plan that cannot start. */
export async function runLocally(o: LocalRunOptions): Promise<LocalRunResult> {
  // A private data dir, locked like any other so that the rule holds without exceptions.
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'troupe-run-'));
  const lock = await lockDataDir(scratch);
  const store: Store = o.databaseUrl
    ? await createStore({ kind: 'postgres', url: o.databaseUrl })
    : await createStore({ kind: 'pglite', dataDir: path.join(scratch, 'pgdata') });
  const bus = new EventBus(store, o.logger);
  // Another process's runs in a shared database are not ours to resume.
  const runtime = new Runtime({ store, bus, logger: o.logger, client: o.client, dataDir: scratch, childEnv: childEnvFrom(o.env), resume: false, sandboxMode: o.sandboxMode });
  const view = new ProgressView(o.mode, o.out);
  try {
    await store.migrate();
    await runtime.start();
    const { tasks, ...body } = o.plan;
    // Without a workspace, a fresh git repository that outlives this run (its path is printed).
    const workspace = body.workspace ?? path.join(await mkdtemp(path.join(os.tmpdir(), 'troupe-workspace-')), 'workspace');
    const project = await runtime.createProject({ ...body, workspace });
    const sub = bus.subscribe({ projectId: project.id, fromSeq: 0 }, (e) => view.onEvent(e));
    if (tasks && tasks.length > 0) await runtime.addTasks(project.id, tasks);
    const run = await runtime.startRun(project.id);
    const end = await runEnd(bus, project.id, run.id, () => {
      void runtime.cancelRun(project.id).catch((e: unknown) => o.logger.warn({ err: coerceError(e) }, 'cannot cancel the run'));
    }, o.interrupt);
    await runtime.host(project.id)?.settled();
    view.finish();
    sub.close();
    const status = end.type.slice('run.'.length);
    return {
      exitCode: status === 'completed' ? 0 : status === 'cancelled' ? 130 : 1,
      runStatus: status,
      summary: 'summary' in end.data ? end.data.summary : status,
      workspace: project.workspace,
      tasks: await runtime.listTasks(project.id),
      totals: view.totals(),
    };
  } finally {
    view.finish();
    await runtime.stop();
    await bus.stop();
    await store.close();
    lock.release();
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Resolves with the run's final event; `onInterrupt` runs (once) when the user asks to stop. */
function runEnd(bus: EventBus, projectId: string, runId: string, onInterrupt: () => void, interrupt: AbortSignal): Promise<TroupeEvent> {
  return new Promise((resolve) => {
    const sub = bus.subscribe({ projectId, fromSeq: 0, types: ['run.completed', 'run.blocked', 'run.failed', 'run.cancelled'] }, (e) => {
      if (e.runId !== runId) return;
      sub.close();
      resolve(e);
    });
    if (interrupt.aborted) onInterrupt();
    else interrupt.addEventListener('abort', onInterrupt, { once: true });
  });
}

/** The lines printed after a run: tasks, attempts, tokens, where the work is. */
export function formatSummary(r: LocalRunResult): string {
  const lines = [``, `Run ${r.runStatus}: ${r.summary}`, ``];
  const width = Math.max(4, ...r.tasks.map((t) => t.key.length));
  for (const t of r.tasks) {
    const detail = t.blockedReason ? ` (${t.blockedReason})` : '';
    lines.push(`  ${t.key.padEnd(width)}  ${t.status}${detail}  ${t.agentType}  ${t.attempts} attempt(s)${t.commit ? `  ${t.commit.slice(0, 10)}` : ''}`);
  }
  const cost = r.totals.costUsd === null ? 'cost unknown (unpriced model)' : `$${r.totals.costUsd.toFixed(4)}`;
  lines.push(``, `Tokens: ${r.totals.inputTokens} in, ${r.totals.outputTokens} out; ${cost}`, `Workspace: ${r.workspace}`);
  const log = gitLog(r.workspace);
  if (log) lines.push(`Commits:`, ...log.split('\n').map((l) => `  ${l}`));
  return `${lines.join('\n')}\n`;
}

function gitLog(dir: string): string | null {
  try {
    return execFileSync('git', ['log', '--oneline', '-n', '20'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

