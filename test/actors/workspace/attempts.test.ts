import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { attemptChanges, attemptDir, discardAttempt, recordAfter, recordBefore, taskChanges } from '../../../src/actors/workspace/attempts.ts';
import { diffChanges, unifiedText } from '../../../src/actors/workspace/diff.ts';
import { applyFiles, type ProposedFile } from '../../../src/actors/workspace/files.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
const temp = async () => {
  const d = await mkdtemp(path.join(os.tmpdir(), 'troupe-attempts-'));
  dirs.push(d);
  return d;
};

/** Applies an answer as the worker does: the "before" recorded just before the renames, the "after" once written. */
async function apply(tree: string, root: string, attempt: number, files: ProposedFile[]) {
  const dir = attemptDir(root, 0, attempt);
  const result = await applyFiles(tree, files, { beforeCommit: async (planned) => (await recordBefore(dir, planned), null) });
  expect(result.ok).toBe(true);
  await recordAfter(dir, tree);
}

describe('attempt records', () => {
  it('keep what each attempt changed, combine kept attempts, undo a rejected one, and diff as git does', async () => {
    const tree = await temp();
    const root = await temp();
    await mkdir(path.join(tree, 'lib'));
    await writeFile(path.join(tree, 'lib/a.js'), 'one\ntwo\nthree\n');
    await writeFile(path.join(tree, 'old.txt'), 'old\n');
    execFileSync('git', ['init', '-q'], { cwd: tree });
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@e', 'add', '-A'], { cwd: tree });
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@e', 'commit', '-qm', 'base'], { cwd: tree });

    await apply(tree, root, 1, [
      { path: 'lib/a.js', action: 'modify', content: 'one\nTWO\nthree\n' },
      { path: 'lib/b.js', action: 'create', content: 'b\n' },
    ]);
    await apply(tree, root, 2, [
      { path: 'lib/b.js', action: 'modify', content: 'b2\n' },
      { path: 'old.txt', action: 'delete' },
    ]);
    // An apply run again after a crash (its files already on disk) keeps the first "before".
    await apply(tree, root, 2, [{ path: 'lib/b.js', action: 'modify', content: 'b2\n' }, { path: 'old.txt', action: 'delete' }]);

    const all = await diffChanges(await taskChanges(root, 0));
    expect(all.map((f) => [f.path, f.status])).toEqual([
      ['lib/a.js', 'modified'],
      ['lib/b.js', 'added'],
      ['old.txt', 'deleted'],
    ]);
    const text = unifiedText(all);
    expect(text).toContain('diff --git a/lib/b.js b/lib/b.js\nnew file mode 100644\n--- /dev/null\n+++ b/lib/b.js\n@@ -0,0 +1 @@\n+b2\n');
    expect(text).toContain('-two\n+TWO\n');
    // The combined diff applies to the base: it is exactly the task's change.
    const base = await temp();
    execFileSync('git', ['clone', '-q', tree, base]);
    await writeFile(path.join(base, 'task.patch'), text);
    execFileSync('git', ['apply', 'task.patch'], { cwd: base });
    expect(await readFile(path.join(base, 'lib/b.js'), 'utf8')).toBe('b2\n');

    expect((await attemptChanges(root, 0, 2))!.map((c) => c.path)).toEqual(['lib/b.js', 'old.txt']);
    expect(await attemptChanges(root, 0, 3)).toBeNull();

    // Undoing attempt 2 brings the tree back to where attempt 1 left it; twice is the same as once.
    await discardAttempt(root, 0, 2, tree);
    await discardAttempt(root, 0, 2, tree);
    expect(await readFile(path.join(tree, 'lib/b.js'), 'utf8')).toBe('b\n');
    expect(await readFile(path.join(tree, 'old.txt'), 'utf8')).toBe('old\n');
    expect((await taskChanges(root, 0)).map((c) => c.path)).toEqual(['lib/a.js', 'lib/b.js']);
  });
});
