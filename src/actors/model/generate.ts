/**
 * The worker's `generate` effect: one `write_files` answer per attempt, paid for once.
 */
import type Anthropic from '@anthropic-ai/sdk';
import { fromPromise } from 'xstate';
import type { GenerateInput, GenerateOutput } from '../../machines/worker.ts';
import { describeWorkspace } from '../workspace/view.ts';
import { callAndRecord, type ModelDeps } from './journal.ts';
import { parseProposal } from './proposal.ts';
import { workerSystemPrompt, workerUserMessage } from './prompts.ts';
import { WRITE_FILES_TOOL } from './tools.ts';

export interface TaskText {
  key: string;
  title: string;
  description: string;
  guidance: string | null;
}

/** What effects may read about tasks and budgets. Implemented over the database by the runtime. */
export interface TaskReader {
  loadTask(taskId: string): Promise<TaskText>;
}
export interface BudgetReader {
  /** USD spent by the project's priced calls so far, and its budget (null: none). */
  budgetOf(projectId: string): Promise<{ spentUsd: number; budgetUsd: number | null }>;
}

export interface GenerateDeps extends ModelDeps {
  tasks: TaskReader;
  budget: BudgetReader;
  maxTokens: number;
}

export const generationKey = (taskId: string, epoch: number, attempt: number) => `gen:${taskId}:${epoch}:${attempt}`;

/** Is there budget left for another call? */
export async function checkBudget(budget: BudgetReader, projectId: string): Promise<{ spentUsd: number; budgetUsd: number } | null> {
  const b = await budget.budgetOf(projectId);
  return b.budgetUsd !== null && b.spentUsd >= b.budgetUsd ? { spentUsd: b.spentUsd, budgetUsd: b.budgetUsd } : null;
}

export function createGenerate(deps: GenerateDeps) {
  return fromPromise<GenerateOutput, GenerateInput>(({ input, signal }) => generateAnswer(deps, input, signal));
}

/** The recorded answer of the attempt, or a new (paid, recorded) one. */
export async function generateAnswer(deps: GenerateDeps, input: GenerateInput, signal: AbortSignal): Promise<GenerateOutput> {
  const { job, attempt } = input;
  const callKey = generationKey(job.taskId, job.epoch, attempt);
  const scope = { projectId: job.settings.projectId, runId: job.settings.runId, taskId: job.taskId, agentId: input.agentId };
  // An answer recorded before a crash or restart is used as is: never paid for twice. The
  // reads a new call needs go out at the same time.
  const [recorded, over, task] = await Promise.all([
    deps.journal.find(scope.projectId, callKey),
    checkBudget(deps.budget, scope.projectId),
    deps.tasks.loadTask(job.taskId),
  ]);
  let message = recorded;
  if (!message) {
    if (over) return { kind: 'budget_exhausted', ...over };
    const params = await buildRequest(deps, input, task);
    message = await callAndRecord(deps, {
      ...scope,
      callKey,
      purpose: attempt > 1 ? 'correct' : 'generate',
      params,
      signal,
    });
  }
  const proposal = parseProposal(message);
  if (!proposal.ok) return { kind: 'invalid', callKey, reason: proposal.reason };
  return { kind: 'proposal', callKey, fileCount: proposal.files.length };
}

async function buildRequest(deps: GenerateDeps, input: GenerateInput, task: TaskText): Promise<Anthropic.MessageCreateParamsNonStreaming> {
  const { job } = input;
  const workspaceView = await describeWorkspace(input.treePath, { hints: [task.title, task.description] });
  let previousFiles = null;
  if (input.failure && input.previousCallKey) {
    const previous = await deps.journal.find(job.settings.projectId, input.previousCallKey);
    const parsed = previous ? parseProposal(previous) : null;
    if (parsed?.ok) previousFiles = parsed.files;
  }
  const text = workerUserMessage({
    key: task.key,
    title: task.title,
    description: task.description,
    guidance: task.guidance,
    attempt: input.attempt,
    maxAttempts: job.settings.maxCorrections + 1,
    workspaceView,
    testCommand: job.settings.testCommand,
    failure: input.failure,
    previousFiles,
    baseline: job.settings.baseline ?? null,
  });
  return {
    model: job.settings.model,
    max_tokens: deps.maxTokens,
    system: [{ type: 'text', text: workerSystemPrompt(input.agentType), cache_control: { type: 'ephemeral' } }],
    tools: [{ ...WRITE_FILES_TOOL, cache_control: { type: 'ephemeral' } }],
    tool_choice: { type: 'tool', name: 'write_files' },
    messages: [{ role: 'user', content: text }],
  };
}
