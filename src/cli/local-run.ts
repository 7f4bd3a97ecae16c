/**
 * One plan, run in this process: a runtime over PGlite in a temporary directory (or
 * DATABASE_URL), live progress, Ctrl-C cancels cleanly, a summary at the end. Used by
 * `troupe run` and `troupe demo`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Anthropic from '@anthropic-ai/sdk';
import { checkNewProject } from '../actors/runtime/projects.ts';
import { Runtime } from '../actors/runtime/runtime.ts';
import { ensureWorkspace } from '../actors/workspace/workspace.ts';
import { childEnvFrom } from '../config.ts';
import { lockDataDir } from '../datadir-lock.ts';
import { createStore, type Store } from '../db/client.ts';
import type { planFileSchema } from '../domain/inputs.ts';
import { coerceError } from '../errors.ts';
import { EventBus } from '../events/bus.ts';
import type { TroupeEvent } from '../events/types.ts';
import type { Logger } from '../logger.ts';
import { ProgressView, type ProgressMode } from './progress.ts';
import { formatRunSummary, gitHead, type SummaryInput } from './summary.ts';
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

/** What a run ended with: what the summary prints, and the exit code. */
export interface LocalRunResult extends SummaryInput {
  /** 0 every task completed, 1 blocked or failed, 130 cancelled. */
  exitCode: number;
}

/** Runs the plan to its end. Throws a `TroupeError` (validation, 422) for a plan that cannot start. */
export async function runLocally(o: LocalRunOptions): Promise<LocalRunResult> {
  const { tasks, ...body } = o.plan;
  const childEnv = childEnvFrom(o.env);
  // Every check before anything exists (no database, no workspace): a plan that cannot start is
  // refused in a moment. The temporary workspace is used at once, so nothing can be put in it first.
  await checkNewProject(body, 'plan', { dataDir: os.tmpdir(), childEnv, sandboxMode: o.sandboxMode, defaultStaysEmpty: true });
  // A private data dir, locked like any other so that the rule holds without exceptions.
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'troupe-run-'));
  const lock = await lockDataDir(scratch);
  const store: Store = o.databaseUrl
    ? await createStore({ kind: 'postgres', url: o.databaseUrl })
    : await createStore({ kind: 'pglite', dataDir: path.join(scratch, 'pgdata') });
  const bus = new EventBus(store, o.logger);
  // Another process's runs in a shared database are not ours to resume.
  const runtime = new Runtime({ store, bus, logger: o.logger, client: o.client, dataDir: scratch, childEnv, resume: false, sandboxMode: o.sandboxMode });
  const view = new ProgressView(o.mode, o.out);
  try {
    await store.migrate();
    await runtime.start();
    // Without a workspace, a fresh git repository that outlives this run (its path is printed).
    const workspace = body.workspace ?? (await freshWorkspace(childEnv));
    const project = await runtime.createProject({ ...body, workspace });
    const sub = bus.subscribe({ projectId: project.id, fromSeq: 0 }, (e) => view.onEvent(e));
    if (tasks && tasks.length > 0) await runtime.addTasks(project.id, tasks);
    view.setIsolation(project.config.isolation);
    const headBefore = gitHead(project.workspace);
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
      isolation: project.config.isolation,
      headBefore,
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

/** A new git repository (with its initial commit) in a temporary directory. */
async function freshWorkspace(env: Record<string, string>): Promise<string> {
  const dir = path.join(await mkdtemp(path.join(os.tmpdir(), 'troupe-workspace-')), 'workspace');
  return (await ensureWorkspace(dir, { create: true, env })).path;
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

/** The lines printed after a run: tasks and why they did not complete, tokens, where the work is. */
export function formatSummary(r: LocalRunResult): string {
  return formatRunSummary(r);
}
