import type Anthropic from '@anthropic-ai/sdk';
import { describeIssues, toolInput, writeFilesInput, type WriteFilesInput } from './tools.ts';

export type Proposal = { ok: true; files: WriteFilesInput['files']; explanation: string } | { ok: false; reason: string };

/** A worker answer as a `write_files` proposal, or why it is not one. */
export function parseProposal(message: Pick<Anthropic.Message, 'content' | 'stop_reason'>): Proposal {
  const input = toolInput(message, 'write_files');
  if (!input.ok) return input;
  const parsed = writeFilesInput.safeParse(input.input);
  if (!parsed.success) return { ok: false, reason: `invalid write_files input: ${describeIssues(parsed.error)}` };
  const missing = parsed.data.files.find((f) => f.action !== 'delete' && typeof f.content !== 'string');
  if (missing) return { ok: false, reason: `invalid write_files input: ${missing.path}: content is required for ${missing.action}` };
  return { ok: true, files: parsed.data.files, explanation: parsed.data.explanation };
}
