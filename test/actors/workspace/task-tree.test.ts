import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyFiles } from '../../../src/actors/workspace/files.ts';
import { commitTaskTree, prepareTaskTree, removeTaskTree, type TaskTreeOptions } from '../../../src/actors/workspace/task-tree.ts';
import { mutex, removeTempDirs, repoWith, sh, snapshot, tempDir } from './helpers.ts';

afterEach(removeTempDirs);

let ws: string;
let worktreesDir: string;
let lock: ReturnType<typeof mutex>['lock'];
let lockCalls: number;
const opts = (key: string): TaskTreeOptions => ({ workspace: ws, isolation: 'worktree', worktreesDir, key });
const commit = (key: string, message = `task ${key}`) => commitTaskTree({ ...opts(key), message, lock });
const write = async (root: string, file: string, content: string) => {
  expect(await applyFiles(root, [{ path: file, action: 'modify', content }])).toMatchObject({ ok: true });
};

describe('worktree isolation', () => {
  beforeEach(async () => {
    ws = await repoWith({ 'README.md': 'line one\n', 'keep.txt': 'keep\n' });
    worktreesDir = path.join(await tempDir(), 'worktrees', 'project-1');
    const m = mutex();
    lockCalls = 0;
    lock = (fn) => {
      lockCalls += 1;
      return m.lock(fn);
    };
  });

  it.each(['.x', 'a..b', 'x.lock', '..', 'x-1', 'end.'])('a contract-valid key %j that git cannot use as a ref still gets its own branch and directory', async (key) => {
    const tree = await prepareTaskTree(opts(key));
    expect(path.dirname(tree.path)).toBe(worktreesDir);
    expect(tree.branch).toMatch(/^troupe\/x-[0-9a-f]+$/);
    await write(tree.path, 'odd.txt', `${key}\n`);
    expect(await commit(key)).toMatchObject({ status: 'committed', files: ['odd.txt'] });
    expect(await readFile(path.join(ws, 'odd.txt'), 'utf8')).toBe(`${key}\n`);
  });

  it("links the workspace's node_modules into the worktree, and never commits the link", async () => {
    await mkdir(path.join(ws, 'node_modules', 'dep'), { recursive: true });
    await writeFile(path.join(ws, 'node_modules', 'dep', 'index.js'), 'module.exports = 1;\n');
    const tree = await prepareTaskTree(opts('deps'));
    expect(await readFile(path.join(tree.path, 'node_modules', 'dep', 'index.js'), 'utf8')).toBe('module.exports = 1;\n');
    await write(tree.path, 'uses-dep.js', "require('dep');\n");
    expect(await commit('deps')).toMatchObject({ status: 'committed', files: ['uses-dep.js'] });
    expect(sh(ws, 'ls-files')).not.toContain('node_modules');
  });

  it('prepares and removes many worktrees at once without git tripping over itself', async () => {
    const keys = Array.from({ length: 8 }, (_, i) => `k${i}`);
    const trees = await Promise.all(keys.map((k) => prepareTaskTree(opts(k))));
    expect(trees.map((tr) => tr.branch)).toEqual(keys.map((k) => `troupe/${k}`));
    await Promise.all(keys.map((k) => removeTaskTree(opts(k))));
    await Promise.all(keys.map((k) => prepareTaskTree(opts(k))));
    expect(sh(ws, 'worktree', 'list').split('\n')).toHaveLength(9);
  });

  it('committing again after a crash that followed the merge returns the same commit (no new commit, no error)', async () => {
    const tree = await prepareTaskTree(opts('replay'));
    await write(tree.path, 'src/replay.js', 'x\n');
    const first = await commit('replay');
    expect(first).toMatchObject({ status: 'committed', files: ['src/replay.js'] });
    const count = sh(ws, 'rev-list', '--count', 'HEAD');
    // Crash before the cleanup: the worktree is still there. The landing is recognised (`replayed`:
    // the effect then does not report a second commit).
    expect(await commit('replay')).toEqual({ ...first, replayed: true });
    // Crash after the cleanup: the worktree is gone, the branch remains.
    await removeTaskTree(opts('replay'));
    expect(await commit('replay')).toEqual({ ...first, replayed: true });
    expect(sh(ws, 'rev-list', '--count', 'HEAD')).toBe(count);
    // A different task's message does not pass for this one.
    await expect(commit('replay', 'another message')).rejects.toThrow(/worktree is missing/);
  });

  it('parallel tasks on different files both land as two linear commits; the next task starts from both', async () => {
    const base = sh(ws, 'rev-parse', 'HEAD');
    const [a, b] = await Promise.all([prepareTaskTree(opts('a')), prepareTaskTree(opts('b'))]);
    expect(a).toEqual({ path: path.join(worktreesDir, 'a'), branch: 'troupe/a', baseSha: base });
    expect(b).toMatchObject({ branch: 'troupe/b', baseSha: base });
    await write(a.path, 'src/a.js', 'export const a = 1;\n');
    await write(b.path, 'src/b.js', 'export const b = 2;\n');

    const [ra, rb] = await Promise.all([commit('a'), commit('b')]);
    expect(ra).toMatchObject({ status: 'committed', files: ['src/a.js'], message: 'task a' });
    expect(rb).toMatchObject({ status: 'committed', files: ['src/b.js'], message: 'task b' });
    expect(lockCalls).toBe(2);

    expect(sh(ws, 'rev-list', '--count', `${base}..HEAD`)).toBe('2');
    expect(sh(ws, 'rev-list', '--count', '--merges', `${base}..HEAD`)).toBe('0');
    expect(sh(ws, 'log', '--format=%s', `${base}..HEAD`).split('\n').sort()).toEqual(['task a', 'task b']);
    const head = sh(ws, 'rev-parse', 'HEAD');
    expect([ra, rb].map((r) => (r.status === 'committed' ? r.sha : ''))).toContain(head);
    expect(sh(ws, 'branch', '--show-current')).toBe('main');
    expect(await readFile(path.join(ws, 'src/a.js'), 'utf8')).toBe('export const a = 1;\n');
    expect(await readFile(path.join(ws, 'src/b.js'), 'utf8')).toBe('export const b = 2;\n');
    expect(sh(ws, 'status', '--porcelain')).toBe('');

    const c = await prepareTaskTree(opts('c'));
    expect(c.baseSha).toBe(head);
    expect(existsSync(path.join(c.path, 'src/a.js'))).toBe(true);
    expect(existsSync(path.join(c.path, 'src/b.js'))).toBe(true);
  });

  it('a task editing the same line as a merged one gets a conflict and keeps its branch; a retry starts fresh', async () => {
    const [a, b] = await Promise.all([prepareTaskTree(opts('a')), prepareTaskTree(opts('b'))]);
    await write(a.path, 'README.md', 'line one, by a\n');
    await write(b.path, 'README.md', 'line one, by b\n');
    const ra = await commit('a');
    expect(ra.status).toBe('committed');
    const headAfterA = sh(ws, 'rev-parse', 'HEAD');

    const rb = await commit('b');
    expect(rb).toMatchObject({ status: 'conflict', branch: 'troupe/b', detail: expect.stringContaining('README.md') as unknown });
    // The workspace shows a's work only, and nothing is left half-merged anywhere.
    expect(sh(ws, 'rev-parse', 'HEAD')).toBe(headAfterA);
    expect(await readFile(path.join(ws, 'README.md'), 'utf8')).toBe('line one, by a\n');
    expect(sh(ws, 'status', '--porcelain')).toBe('');
    expect(existsSync(sh(b.path, 'rev-parse', '--path-format=absolute', '--git-path', 'rebase-merge'))).toBe(false);
    // b's work survives on its branch, on top of its original base.
    const oldB = sh(ws, 'rev-parse', 'troupe/b');
    expect(sh(ws, 'log', '-1', '--format=%s', 'troupe/b')).toBe('task b');
    expect(sh(ws, 'show', 'troupe/b:README.md')).toBe('line one, by b');
    expect(sh(ws, 'rev-parse', 'troupe/b~1')).toBe(b.baseSha);

    const retry = await prepareTaskTree(opts('b'));
    expect(sh(ws, 'rev-parse', 'troupe/b-prev-1')).toBe(oldB);
    expect(retry).toMatchObject({ branch: 'troupe/b', baseSha: headAfterA });
    expect(sh(ws, 'rev-parse', 'troupe/b')).toBe(headAfterA);
    expect(await readFile(path.join(retry.path, 'README.md'), 'utf8')).toBe('line one, by a\n');

    // Preparing again with nothing new on troupe/b keeps the same single saved branch.
    await prepareTaskTree(opts('b'));
    expect(sh(ws, 'branch', '--list', 'troupe/b*', '--format=%(refname:short)').split('\n')).toEqual(['troupe/b', 'troupe/b-prev-1']);
  });

  it('a task that changed nothing succeeds with no files and no new commit', async () => {
    const head = sh(ws, 'rev-parse', 'HEAD');
    await prepareTaskTree(opts('noop'));
    expect(await commit('noop')).toEqual({ status: 'committed', sha: head, files: [], message: 'task noop' });
    expect(sh(ws, 'rev-parse', 'HEAD')).toBe(head);
  });

  it('refuses to fast-forward over uncommitted user changes, which stay untouched', async () => {
    const t = await prepareTaskTree(opts('t'));
    await write(t.path, 'README.md', 'from the task\n');
    await writeFile(path.join(ws, 'README.md'), 'user edit in progress\n');
    const head = sh(ws, 'rev-parse', 'HEAD');
    const result = await commit('t');
    expect(result).toMatchObject({ status: 'conflict', branch: 'troupe/t', detail: expect.stringContaining('fast-forward') as unknown });
    expect(await readFile(path.join(ws, 'README.md'), 'utf8')).toBe('user edit in progress\n');
    expect(sh(ws, 'rev-parse', 'HEAD')).toBe(head);
    expect(sh(ws, 'show', 'troupe/t:README.md')).toBe('from the task');
  });

  it('recreates a worktree left over by a crash, dropping its uncommitted files', async () => {
    const first = await prepareTaskTree(opts('x'));
    await writeFile(path.join(first.path, 'half-done.txt'), 'partial\n');
    const again = await prepareTaskTree(opts('x'));
    expect(again.path).toBe(first.path);
    expect(existsSync(path.join(again.path, 'half-done.txt'))).toBe(false);
    expect(existsSync(path.join(again.path, 'README.md'))).toBe(true);
  });

  it('removeTaskTree deletes the directory and keeps the branch', async () => {
    const t = await prepareTaskTree(opts('gone'));
    await write(t.path, 'new.txt', 'new\n');
    await commit('gone');
    await removeTaskTree(opts('gone'));
    expect(existsSync(t.path)).toBe(false);
    expect(sh(ws, 'worktree', 'list', '--porcelain')).not.toContain(t.path);
    expect(sh(ws, 'log', '-1', '--format=%s', 'troupe/gone')).toBe('task gone');
  });

  it('only the latest unmerged attempt is kept as -prev-<n>, and none once the task lands', async () => {
    const conflicting = async (content: string) => {
      const [a, b] = await Promise.all([prepareTaskTree(opts(`a${content}`)), prepareTaskTree(opts('b'))]);
      await write(a.path, 'README.md', `by a ${content}\n`);
      await write(b.path, 'README.md', `by b ${content}\n`);
      expect((await commit(`a${content}`)).status).toBe('committed');
      expect((await commit('b')).status).toBe('conflict');
    };
    await conflicting('1');
    await conflicting('2');
    await conflicting('3');
    const branches = () => sh(ws, 'branch', '--list', 'troupe/b*', '--format=%(refname:short)').split('\n');
    expect(branches()).toEqual(['troupe/b', 'troupe/b-prev-2']);
    expect(sh(ws, 'show', 'troupe/b-prev-2:README.md')).toBe('by b 2');
    const retry = await prepareTaskTree(opts('b'));
    expect(branches()).toEqual(['troupe/b', 'troupe/b-prev-3']);
    await write(retry.path, 'b.txt', 'b\n');
    expect((await commit('b')).status).toBe('committed');
    expect(branches()).toEqual(['troupe/b']);
  });

  it("takes over a branch still checked out in a dead owner's worktree (another data dir), leaving that tree untouched", async () => {
    const other = path.join(await tempDir(), 'worktrees', 'project-1');
    const dead = await prepareTaskTree({ ...opts('t'), worktreesDir: other });
    await write(dead.path, 'half.txt', 'the dead owner was here\n');
    const before = snapshot(dead.path);
    const mine = await prepareTaskTree(opts('t'));
    expect(path.dirname(mine.path)).toBe(worktreesDir);
    expect(existsSync(path.join(mine.path, 'half.txt'))).toBe(false);
    await write(mine.path, 'mine.txt', 'mine\n');
    expect(await commit('t')).toMatchObject({ status: 'committed', files: ['mine.txt'] });
    expect(snapshot(dead.path)).toEqual(before);
  });

  it('recreates a worktree whose removal was killed half-way (files left, its .git file gone)', async () => {
    const tree = await prepareTaskTree(opts('half'));
    await write(tree.path, 'left.txt', 'left\n');
    await rm(path.join(tree.path, '.git'));
    const again = await prepareTaskTree(opts('half'));
    expect(again.path).toBe(tree.path);
    expect(existsSync(path.join(again.path, 'left.txt'))).toBe(false);
    expect(existsSync(path.join(again.path, 'README.md'))).toBe(true);
  });

  it('will not delete a directory in the way that is not a worktree', async () => {
    await mkdir(path.join(worktreesDir, 'mine'), { recursive: true });
    await writeFile(path.join(worktreesDir, 'mine', 'precious.txt'), 'keep me\n');
    await expect(prepareTaskTree(opts('mine'))).rejects.toThrow(/not a Troupe worktree/);
    expect(existsSync(path.join(worktreesDir, 'mine', 'precious.txt'))).toBe(true);
  });

  it.each(['has/slash', '', 'a b', 'x'.repeat(65)])('refuses a key outside the contract pattern: %j', async (key) => {
    await expect(prepareTaskTree(opts(key))).rejects.toThrow(/task key/);
  });
});

describe('shared mode', () => {
  const shared = (workspace: string, files?: string[]) => ({
    workspace,
    isolation: 'shared' as const,
    worktreesDir: '/nonexistent',
    key: 'k',
    message: 'shared task',
    files,
    lock: mutex().lock,
  });

  it('outside git there is nothing to commit', async () => {
    const dir = await tempDir();
    expect(await prepareTaskTree(shared(dir))).toEqual({ path: dir, branch: null, baseSha: null });
    await writeFile(path.join(dir, 'a.txt'), 'a\n');
    expect(await commitTaskTree(shared(dir, ['a.txt']))).toEqual({ status: 'not_git' });
    expect(existsSync(path.join(dir, '.git'))).toBe(false);
  });

  it('commits only the listed files, including deletions, and leaves the user’s other changes alone', async () => {
    const dir = await repoWith({ 'b.txt': 'b\n', 'c.txt': 'c\n', 'other.txt': 'other\n', '.gitignore': '*.log\n' });
    const base = sh(dir, 'rev-parse', 'HEAD');
    expect(await prepareTaskTree(shared(dir))).toEqual({ path: dir, branch: null, baseSha: base });
    const applied = await applyFiles(dir, [
      { path: 'a.txt', action: 'create', content: 'a\n' },
      { path: 'b.txt', action: 'modify', content: 'b2\n' },
      { path: 'c.txt', action: 'delete' },
      { path: 'never.txt', action: 'delete' },
      { path: '*.md', action: 'create', content: 'odd name\n' },
      { path: 'run.log', action: 'create', content: 'ignored\n' },
    ]);
    expect(applied.ok).toBe(true);
    await writeFile(path.join(dir, 'notes.md'), 'user notes\n');
    await writeFile(path.join(dir, 'other.txt'), 'user staged\n');
    sh(dir, 'add', 'other.txt');

    const files = ['a.txt', 'b.txt', 'c.txt', 'never.txt', '*.md', 'run.log'];
    const result = await commitTaskTree(shared(dir, files));
    expect(result).toMatchObject({ status: 'committed', files: ['*.md', 'a.txt', 'b.txt', 'c.txt'], message: 'shared task' });
    expect(result.status === 'committed' && result.sha).toBe(sh(dir, 'rev-parse', 'HEAD'));
    expect(sh(dir, 'rev-list', '--count', `${base}..HEAD`)).toBe('1');
    expect(sh(dir, 'show', '--name-status', '--format=', 'HEAD').split('\n')).toEqual(['A\t*.md', 'A\ta.txt', 'M\tb.txt', 'D\tc.txt']);
    expect(sh(dir, 'status', '--porcelain').split('\n')).toEqual(['M  other.txt', '?? notes.md']);
  });

  it('committing again after a crash that followed the commit recognises it: same sha and files, no new commit', async () => {
    const dir = await repoWith({ 'b.txt': 'b\n' });
    expect((await applyFiles(dir, [{ path: 'a.txt', action: 'create', content: 'a\n' }])).ok).toBe(true);
    const first = await commitTaskTree(shared(dir, ['a.txt']));
    expect(first).toMatchObject({ status: 'committed', files: ['a.txt'] });
    expect(await commitTaskTree(shared(dir, ['a.txt']))).toEqual({ ...first, replayed: true });
    expect(sh(dir, 'rev-list', '--count', 'HEAD')).toBe('2');
  });

  it('with no files listed, commits nothing', async () => {
    const dir = await repoWith({ 'a.txt': 'a\n' });
    const head = sh(dir, 'rev-parse', 'HEAD');
    await writeFile(path.join(dir, 'a.txt'), 'changed\n');
    expect(await commitTaskTree(shared(dir, []))).toEqual({ status: 'committed', sha: head, files: [], message: 'shared task' });
    expect(sh(dir, 'rev-parse', 'HEAD')).toBe(head);
  });
});
