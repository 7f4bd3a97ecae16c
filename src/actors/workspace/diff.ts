/**
 * Unified diffs of what a task (or one attempt) changed, from the copies `attempts.ts` keeps:
 * what a reviewer reads before approving. The text is git's format (`diff --git`, `new file
 * mode`, `--- a/…`, `+++ b/…`), so `git apply` takes it.
 */
import { readFile } from 'node:fs/promises';
import { structuredPatch } from 'diff';
import type { FileChange } from './attempts.ts';

export interface FileDiff {
  path: string;
  status: 'added' | 'modified' | 'deleted';
  patch: string;
}

/** Files larger than this are not diffed line by line (the patch says so). */
const MAX_DIFFED_BYTES = 2 * 1024 * 1024;

export async function diffChanges(changes: readonly FileChange[]): Promise<FileDiff[]> {
  return Promise.all(changes.map(diffOne));
}

/** The whole diff as one text, files in order. */
export function unifiedText(files: readonly FileDiff[]): string {
  return files.map((f) => f.patch).join('');
}

async function diffOne(change: FileChange): Promise<FileDiff> {
  const status = change.before === null ? 'added' : change.after === null ? 'deleted' : 'modified';
  const [before, after] = await Promise.all([read(change.before), read(change.after)]);
  const p = change.path;
  const head = [`diff --git a/${p} b/${p}`];
  if (status === 'added') head.push('new file mode 100644');
  if (status === 'deleted') head.push('deleted file mode 100644');
  const text = (b: Buffer | null) => (b === null ? '' : b.toString('utf8'));
  if (!isText(before) || !isText(after)) {
    head.push(`Binary files ${before === null ? '/dev/null' : `a/${p}`} and ${after === null ? '/dev/null' : `b/${p}`} differ`);
    return { path: p, status, patch: `${head.join('\n')}\n` };
  }
  head.push(`--- ${before === null ? '/dev/null' : `a/${p}`}`, `+++ ${after === null ? '/dev/null' : `b/${p}`}`);
  const patch = structuredPatch(`a/${p}`, `b/${p}`, text(before), text(after), undefined, undefined, { context: 3 });
  const body: string[] = [];
  for (const h of patch.hunks) {
    // An empty side starts at line 0, as git writes it.
    body.push(`@@ -${h.oldLines === 0 ? h.oldStart - 1 : h.oldStart}${h.oldLines === 1 ? '' : `,${h.oldLines}`} +${h.newLines === 0 ? h.newStart - 1 : h.newStart}${h.newLines === 1 ? '' : `,${h.newLines}`} @@`);
    body.push(...h.lines);
  }
  return { path: p, status, patch: `${[...head, ...body].join('\n')}\n` };
}

async function read(file: string | null): Promise<Buffer | null> {
  return file === null ? null : readFile(file);
}

/** Valid UTF-8 without NUL, and small enough to diff by lines. */
function isText(content: Buffer | null): boolean {
  if (content === null) return true;
  if (content.length > MAX_DIFFED_BYTES || content.includes(0)) return false;
  return !content.toString('utf8').includes('\uFFFD');
}
