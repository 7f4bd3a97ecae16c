/**
 * The baseline of the overhead benchmark: a plain async pool over the same task graph that does
 * the same I/O as Troupe for every task, through the same functions — the guarded status writes
 * with their events (`persistBatch`), the model call through the SDK and the pay-once journal
 * (`callAndRecord`, with the same prompt and workspace view), the file writes (`applyFiles`), the
 * test process (`runTests`) and the result rows and events (`createRecords`). What it leaves out
 * is what the benchmark measures: actors, statecharts, snapshot persistence, the lead's batching.
 */
import { parseProposal } from '../src/actors/model/proposal.ts';
import { callAndRecord } from '../src/actors/model/journal.ts';
import { workerSystemPrompt, workerUserMessage } from '../src/actors/model/prompts.ts';
import { WRITE_FILES_TOOL } from '../src/actors/model/tools.ts';
import { generationKey } from '../src/actors/model/generate.ts';
import { persistBatch } from '../src/actors/runtime/lead-writer.ts';
import { createRecords } from '../src/actors/runtime/records.ts';
import { runTests } from '../src/actors/testing/run-tests.ts';
import { applyFiles } from '../src/actors/workspace/files.ts';
import { describeWorkspace } from '../src/actors/workspace/view.ts';
import type Anthropic from '@anthropic-ai/sdk';
import type { Outbox } from '../src/events/outbox.ts';
import type { Intent } from '../src/machines/lead-logic.ts';
import { tasksOf } from '../src/db/queries.ts';

export interface BaselineOptions {
  outbox: Outbox;
  client: Anthropic;
  projectId: string;
  runId: string;
  workspace: string;
  testCommand: string[];
  concurrency: number;
  childEnv: Record<string, string>;
  model: string;
}

/** Runs every task of the project to completion; resolves with the wall time in ms. */
export async function runBaseline(o: BaselineOptions): Promise<number> {
  const records = createRecords(o.outbox);
  const rows = await tasksOf(o.outbox.store.db, o.projectId);
  const deps = await depsOf(o, rows.map((r) => r.id));
  const byId = new Map(rows.map((r) => [r.id, r]));
  const remaining = new Map(rows.map((r) => [r.id, deps.get(r.id)?.length ?? 0]));
  const dependents = new Map<string, string[]>();
  for (const [id, ds] of deps) for (const d of ds) dependents.set(d, [...(dependents.get(d) ?? []), id]);
  const ready = rows.filter((r) => remaining.get(r.id) === 0).map((r) => r.id);
  const write = (intents: Intent[]) => o.outbox.transact((tx, emit) => persistBatch(tx, emit, { projectId: o.projectId, runId: o.runId, intents }));
  let running = 0;
  let slot = 0;

  const one = async (taskId: string, agentId: string, newAgent: boolean) => {
    const task = byId.get(taskId)!;
    const scope = { projectId: o.projectId, runId: o.runId, taskId, agentId };
    await write([
      { type: 'assign', taskId, key: task.key, agentId, agentType: 'backend', newAgent },
      { type: 'attempt', taskId, key: task.key, attempt: 1 },
    ]);
    const view = await describeWorkspace(o.workspace, { hints: [task.title, task.description] });
    const text = workerUserMessage({
      key: task.key,
      title: task.title,
      description: task.description,
      guidance: null,
      attempt: 1,
      maxAttempts: 4,
      workspaceView: view,
      testCommand: o.testCommand,
      failure: null,
      previousFiles: null,
    });
    const message = await callAndRecord(
      { client: o.client, journal: records },
      {
        ...scope,
        callKey: generationKey(taskId, 0, 1),
        purpose: 'generate',
        signal: new AbortController().signal,
        params: {
          model: o.model,
          max_tokens: 16_000,
          system: [{ type: 'text', text: workerSystemPrompt('backend'), cache_control: { type: 'ephemeral' } }],
          tools: [{ ...WRITE_FILES_TOOL, cache_control: { type: 'ephemeral' } }],
          tool_choice: { type: 'tool', name: 'write_files' },
          messages: [{ role: 'user', content: text }],
        },
      },
    );
    const proposal = parseProposal(message);
    if (!proposal.ok) throw new Error(proposal.reason);
    const applied = await applyFiles(o.workspace, proposal.files);
    if (!applied.ok) throw new Error(applied.reason);
    await records.filesApplied(scope, 1, applied.files, proposal.explanation);
    const result = await runTests({ argv: o.testCommand, cwd: o.workspace, env: o.childEnv, timeoutMs: 60_000 });
    await records.testResult(scope, 0, 1, result, result.status === 'passed');
    await write([{ type: 'complete', taskId, key: task.key, commit: null, files: applied.files.map((f) => f.path), verified: true }]);
  };

  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const idle: string[] = [];
    const pump = () => {
      if (ready.length === 0 && running === 0) return resolve();
      while (running < o.concurrency && ready.length > 0) {
        const taskId = ready.shift()!;
        const reuse = idle.shift();
        const agentId = reuse ?? `backend-${++slot}`;
        running++;
        one(taskId, agentId, reuse === undefined)
          .then(() => {
            running--;
            idle.push(agentId);
            for (const d of dependents.get(taskId) ?? []) {
              const left = remaining.get(d)! - 1;
              remaining.set(d, left);
              if (left === 0) ready.push(d);
            }
            pump();
          })
          .catch(reject);
      }
    };
    pump();
  });
  return performance.now() - started;
}

async function depsOf(o: BaselineOptions, ids: string[]): Promise<Map<string, string[]>> {
  const { taskDependencies } = await import('../src/db/schema.ts');
  const { inArray } = await import('drizzle-orm');
  const rows = await o.outbox.store.db.select().from(taskDependencies).where(inArray(taskDependencies.taskId, ids));
  const out = new Map<string, string[]>();
  for (const r of rows) out.set(r.taskId, [...(out.get(r.taskId) ?? []), r.dependsOnId]);
  return out;
}
