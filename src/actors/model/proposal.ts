import type Anthropic from '@anthropic-ai/sdk';
import { shortText, unstorableIn } from '../../safe-text.ts';
import { describeIssues, toolInput, writeFilesInput, type WriteFilesInput } from './tools.ts';

export type Proposal = { ok: true; files: WriteFilesInput['files']; explanation: string } | { ok: false; reason: string };

/** A worker answer as a `write_files` proposal, or why it is not one. */
export function parseProposal(message: Pick<Anthropic.Message, 'content' | 'stop_reason'>): Proposal {
  const input = toolInput(message, 'write_files');
  if (!input.ok) return input;
  const parsed = writeFilesInput.safeParse(input.input);
  if (!parsed.success) return { ok: false, reason: `invalid write_files input: ${describeIssues(parsed.error)}` };
  const missing = parsed.data.files.find((f) => f.action !== 'delete' && typeof f.content !== 'string');
  if (missing) return { ok: false, reason: `invalid write_files input: ${shortText(missing.path, 200)}: content is required for ${missing.action}` };
  const unwritable = unwritableFile(parsed.data.files);
  if (unwritable) return { ok: false, reason: `invalid write_files input: ${unwritable}` };
  return { ok: true, files: parsed.data.files, explanation: parsed.data.explanation };
}

/**
 * Files are written as UTF-8 text. A NUL in a path would cut it short in the file system and
 * in git; a NUL in content is binary data, which a JSON string cannot carry faithfully anyway
 * (arbitrary bytes are not Unicode), and which every reader after us (the diff, review, the
 * next correction prompt) treats as text. So neither is written: the answer is refused with
 * the reason, and the correction asks for escape sequences in the source instead. A lone
 * surrogate cannot be written as UTF-8 at all (it would silently become U+FFFD).
 */
function unwritableFile(files: WriteFilesInput['files']): string | null {
  for (const file of files) {
    const shown = shortText(file.path, 200);
    const inPath = unstorableIn(file.path);
    if (inPath?.kind === 'nul') return `path contains a NUL byte (${shown})`;
    if (inPath) return `path is not valid Unicode: a lone surrogate (${shown})`;
    const inContent = file.content === undefined ? null : unstorableIn(file.content);
    if (inContent?.kind === 'nul') {
      return `file content contains NUL bytes (${shown}, the first at character ${inContent.index}): files are written as text; write binary data as escape sequences such as \\0 in the source`;
    }
    if (inContent) return `file content is not valid Unicode (${shown}, a lone surrogate at character ${inContent.index}): files are written as UTF-8 text`;
  }
  return null;
}
