/**
 * The lead's `plan` effect: a goal becomes a validated task graph (`create_tasks`), paid once
 * per run, saved with its `task.created` and `run.planned` events.
 */
import { fromPromise } from 'xstate';
import { checkGraph } from '../../domain/graph.ts';
import type { PlanInput, PlanOutput } from '../../machines/lead.ts';
import type { AgentType, TaskView } from '../../machines/types.ts';
import { describeWorkspace } from '../workspace/view.ts';
import { checkBudget, type BudgetReader } from './generate.ts';
import { callOnce, type ModelDeps } from './journal.ts';
import { LEAD_SYSTEM_PROMPT, planUserMessage } from './prompts.ts';
import { CREATE_TASKS_TOOL, createTasksInput, describeIssues, toolInput } from './tools.ts';

export interface PlannedTask {
  key: string;
  title: string;
  description: string;
  agentType: AgentType;
  dependsOn: string[];
}

export interface PlanStore {
  /** Inserts the tasks, their events and `run.planned`, and moves the run to `running`. */
  savePlan(projectId: string, runId: string, tasks: PlannedTask[]): Promise<TaskView[]>;
}

export interface PlanDeps extends ModelDeps {
  budget: BudgetReader;
  plans: PlanStore;
  maxTokens: number;
}

export function createPlan(deps: PlanDeps) {
  return fromPromise<PlanOutput, PlanInput>(async ({ input, signal }) => {
    const callKey = `plan:${input.runId}`;
    let message = await deps.journal.find(input.projectId, callKey);
    if (!message) {
      const over = await checkBudget(deps.budget, input.projectId);
      if (over) return { kind: 'invalid', reason: `budget exhausted: spent $${over.spentUsd.toFixed(4)} of $${over.budgetUsd.toFixed(4)}` };
      const view = await describeWorkspace(input.settings.workspace, { hints: [input.goal] });
      ({ message } = await callOnce(deps, {
        projectId: input.projectId,
        runId: input.runId,
        taskId: null,
        agentId: 'lead',
        callKey,
        purpose: 'plan',
        signal,
        params: {
          model: input.settings.models.lead,
          max_tokens: deps.maxTokens,
          system: [{ type: 'text', text: LEAD_SYSTEM_PROMPT, cache_control: { type: 'ephemeral' } }],
          tools: [{ ...CREATE_TASKS_TOOL, cache_control: { type: 'ephemeral' } }],
          tool_choice: { type: 'tool', name: 'create_tasks' },
          messages: [{ role: 'user', content: planUserMessage(input.goal, view, input.settings.testCommand) }],
        },
      }));
    }
    const raw = toolInput(message, 'create_tasks');
    if (!raw.ok) return { kind: 'invalid', reason: raw.reason };
    const parsed = createTasksInput.safeParse(raw.input);
    if (!parsed.success) return { kind: 'invalid', reason: `invalid create_tasks input: ${describeIssues(parsed.error)}` };
    const problem = checkGraph(parsed.data.tasks);
    if (problem) return { kind: 'invalid', reason: problem.message };
    const tasks = await deps.plans.savePlan(input.projectId, input.runId, parsed.data.tasks);
    return { kind: 'planned', tasks };
  });
}
