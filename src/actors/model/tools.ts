/**
 * The two structured outputs the model answers with (README "The agents"), as Anthropic tool definitions and zod schemas.
 * The model proposes; the schemas (and after them the workspace layer) decide.
 */
import type Anthropic from '@anthropic-ai/sdk';
import { z } from 'zod';
import { AGENT_TYPES, TASK_KEY } from '../../machines/types.ts';
import { unstorableIn } from '../../safe-text.ts';


export const writeFilesInput = z.object({
  files: z
    .array(
      z.object({
        path: z.string().min(1).max(1024),
        action: z.enum(['create', 'modify', 'delete']),
        content: z.string().optional(),
      }),
    )
    .max(10_000),
  explanation: z.string(),
});
export type WriteFilesInput = z.infer<typeof writeFilesInput>;

/** Plan text becomes task rows (Postgres `text`) and prompts: no NUL, no lone surrogate. */
const storable = [(s: string) => unstorableIn(s) === null, 'must not contain NUL or a lone surrogate'] as const;

export const createTasksInput = z.object({
  tasks: z
    .array(
      z.object({
        key: z.string().regex(TASK_KEY, 'key must match [A-Za-z0-9._-]{1,64}'),
        title: z.string().min(1).max(200).refine(...storable),
        description: z.string().max(20_000).refine(...storable),
        agentType: z.enum(AGENT_TYPES),
        dependsOn: z.array(z.string().regex(TASK_KEY, 'dependency keys match [A-Za-z0-9._-]{1,64}')).default([]),
      }),
    )
    .min(1, 'the plan has no tasks')
    .max(200),
});
export type CreateTasksInput = z.infer<typeof createTasksInput>;

export const WRITE_FILES_TOOL: Anthropic.Tool = {
  name: 'write_files',
  description:
    'Write the files that complete the task. Each file is given whole: `content` is the complete new file. ' +
    'Paths are relative to the workspace root. Use action "delete" (no content) to remove a file.',
  input_schema: {
    type: 'object',
    properties: {
      files: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            path: { type: 'string', description: 'Relative path inside the workspace, e.g. src/index.js' },
            action: { type: 'string', enum: ['create', 'modify', 'delete'] },
            content: { type: 'string', description: 'The whole new content of the file (omit for delete)' },
          },
          required: ['path', 'action'],
        },
      },
      explanation: { type: 'string', description: 'One short paragraph: what you changed and why' },
    },
    required: ['files', 'explanation'],
  },
};

export const CREATE_TASKS_TOOL: Anthropic.Tool = {
  name: 'create_tasks',
  description:
    'Create the task graph for the goal. Each task is done by one agent (backend, frontend or test) and ' +
    'may depend on tasks listed before it by key.',
  input_schema: {
    type: 'object',
    properties: {
      tasks: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            key: { type: 'string', description: 'Unique short id, [A-Za-z0-9._-]{1,64}' },
            title: { type: 'string' },
            description: { type: 'string', description: 'What to build and how it will be tested' },
            agentType: { type: 'string', enum: [...AGENT_TYPES] },
            dependsOn: { type: 'array', items: { type: 'string' } },
          },
          required: ['key', 'title', 'description', 'agentType', 'dependsOn'],
        },
      },
    },
    required: ['tasks'],
  },
};

/** The `input` of the first tool_use block named `name`, or a reason why there is none. */
export function toolInput(message: Pick<Anthropic.Message, 'content' | 'stop_reason'>, name: string): { ok: true; input: unknown } | { ok: false; reason: string } {
  const block = message.content.find((b) => b.type === 'tool_use' && b.name === name);
  if (!block || block.type !== 'tool_use') {
    const why = message.stop_reason === 'max_tokens' ? ' (the answer was cut off at max_tokens)' : '';
    return { ok: false, reason: `the answer has no ${name} call${why}` };
  }
  return { ok: true, input: block.input };
}

/** Zod issues as one readable line. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');
}
