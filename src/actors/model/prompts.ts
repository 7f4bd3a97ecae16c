/**
 * Prompts. System prompts are stable per agent type (and marked for prompt caching); the user
 * message carries the task's title and description verbatim, a view of the workspace and, on a
 * correction, what was written last time and how the tests failed.
 */
import type { AgentType, Baseline } from '../../machines/types.ts';
import type { AttemptFailure } from '../../machines/worker.ts';
import { storableText } from '../../safe-text.ts';

const COMMON = `You are one agent in a team of AI coding agents working on a shared code base.
You receive one task. You cannot run commands: the project's own test command runs after you
answer, and its output decides whether your task is done. Answer with exactly one call of the
write_files tool. Give every file whole (the complete new content), with paths relative to the
workspace root. Keep changes focused on the task; do not touch unrelated files; never write
inside .git. Prefer the project's existing conventions, language and test framework.`;

const ROLE: Record<AgentType, string> = {
  backend: `You are the backend agent: server code, libraries, data models, APIs, command-line tools
and their unit tests. Write clear, dependency-free code where you can.`,
  frontend: `You are the frontend agent: user interfaces, components, pages, styles and client-side
logic, plus their tests. Keep markup accessible and logic testable without a browser where you can.`,
  test: `You are the test agent: you write and fix automated tests. A test task is done only when the
project's test command finds and passes real tests, so always write at least one test file that the
test command will pick up.`,
};

export function workerSystemPrompt(agentType: AgentType): string {
  return `${ROLE[agentType]}\n\n${COMMON}`;
}

export const LEAD_SYSTEM_PROMPT = `You are the lead of a team of AI coding agents: backend, frontend and test agents.
Turn the goal into a small graph of concrete tasks, each doable by one agent in one answer and each
checkable by the project's test command. Give each task a short unique key ([A-Za-z0-9._-]), a title,
a description precise enough to implement without asking questions (files, function names, expected
behaviour), the agent type, and the keys of the tasks it depends on. No cycles. Answer with exactly
one call of the create_tasks tool.`;

/** Keeps the head and the tail of a long text, cutting from the middle. */
export function cutMiddle(text: string, max: number): string {
  if (text.length <= max) return text;
  const keep = Math.max(0, max - 40);
  const head = Math.ceil(keep / 2);
  const tail = Math.floor(keep / 2);
  return `${text.slice(0, head)}\n… [${text.length - head - tail} characters cut] …\n${text.slice(text.length - tail)}`;
}

export interface WorkerMessageParts {
  key: string;
  title: string;
  description: string;
  guidance: string | null;
  attempt: number;
  maxAttempts: number;
  workspaceView: string;
  testCommand: string[];
  failure: AttemptFailure | null;
  previousFiles: { path: string; action: string; content?: string | undefined }[] | null;
  /** The test command's run on the base tree before any change, when the run made one. */
  baseline?: Baseline | null;
}

const BASELINE_NAMES_MAX = 30;

/** What already failed before any change, so the model is not asked to fix what it did not break. */
function baselineSection(b: Baseline): string[] {
  if (b.status === 'passed' || b.status === 'no_tests') return [];
  const head = ['', '## Tests that already failed before any change', ''];
  if (b.failing.length === 0) {
    return [...head, `Before any change was made, the test command already failed on the base tree (${storableText(b.summary)}). That is not caused by your work; fix it only if the task asks for it.`];
  }
  const names = b.failing.slice(0, BASELINE_NAMES_MAX).map((n) => `- ${storableText(n)}`);
  if (b.failing.length > BASELINE_NAMES_MAX) names.push(`- … and ${b.failing.length - BASELINE_NAMES_MAX} more`);
  return [
    ...head,
    'These tests failed on the base tree before any change was made. They are not yours to fix unless the task asks for it; if only these fail after your change, your change counts as not breaking anything:',
    '',
    ...names,
  ];
}

export const FAILURE_OUTPUT_MAX = 12_000;
const PREVIOUS_FILES_MAX = 40_000;

export function workerUserMessage(p: WorkerMessageParts): string {
  const parts = [
    `Task key: ${p.key}`,
    `Attempt: ${p.attempt} of ${p.maxAttempts}`,
    '',
    `# ${p.title}`,
    '',
    p.description,
  ];
  if (p.guidance) parts.push('', '## Guidance from a person', '', p.guidance);
  parts.push('', '## How your work is checked', '', `The test command \`${p.testCommand.join(' ')}\` runs in the workspace root after your files are written.`);
  if (p.baseline) parts.push(...baselineSection(p.baseline));
  parts.push('', '## Workspace', '', p.workspaceView || '(empty)');
  if (p.failure) {
    // Failures quote test output and refused answers: NUL never travels into a request.
    parts.push('', `## Your previous attempt failed (correction ${p.attempt - 1})`, '', storableText(p.failure.summary));
    if (p.previousFiles && p.previousFiles.length > 0) {
      const files = p.previousFiles
        .map((f) => (f.action === 'delete' ? `--- ${f.path} (deleted) ---` : `--- ${f.path} ---\n${f.content ?? ''}`))
        .join('\n');
      parts.push('', '### The files you wrote last time', '', cutMiddle(files, PREVIOUS_FILES_MAX));
    }
    if (p.failure.excerpt) parts.push('', '### Failing output', '', '```', storableText(p.failure.excerpt), '```');
    parts.push('', 'Fix the problem. Write every file that needs to change, whole.');
  }
  return parts.join('\n');
}

export function planUserMessage(goal: string, workspaceView: string, testCommand: string[]): string {
  return [
    '# Goal',
    '',
    goal,
    '',
    '## How work is checked',
    '',
    `The project's test command is \`${testCommand.join(' ')}\`.`,
    '',
    '## Workspace',
    '',
    workspaceView || '(empty)',
  ].join('\n');
}
