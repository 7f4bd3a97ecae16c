/**
 * A tidy repository, with real git and real worktrees: no prunable worktree entries after a
 * landing, a cancel or a crash; `-prev-<n>` branches do not pile up; a blocked task keeps its
 * branch; commits carry the workspace's own git identity as author, Troupe as committer.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyFiles } from '../../../src/actors/workspace/files.ts';
import { commitTaskTree, keepWork, prepareTaskTree, removeTaskTree, type TaskTreeOptions } from '../../../src/actors/workspace/task-tree.ts';
import { mutex, removeTempDirs, repoWith, sh, tempDir } from './helpers.ts';

afterEach(removeTempDirs);

let ws: string;
let worktreesDir: string;
const { lock } = mutex();
const opts = (key: string, isolation: 'worktree' | 'shared' = 'worktree'): TaskTreeOptions => ({ workspace: ws, isolation, worktreesDir, key });
const write = async (root: string, file: string, content: string) => {
  expect(await applyFiles(root, [{ path: file, action: 'modify', content }])).toMatchObject({ ok: true });
};
const prunable = () => sh(ws, 'worktree', 'list', '--porcelain').split('\n').filter((l) => l.startsWith('prunable'));
const worktrees = () => sh(ws, 'worktree', 'list', '--porcelain').split('\n').filter((l) => l.startsWith('worktree '));
const people = (rev = 'HEAD') => sh(ws, 'log', '-1', '--format=%an <%ae>|%cn <%ce>', rev);

beforeEach(async () => {
  ws = await repoWith({ 'README.md': 'line one\n' });
  worktreesDir = path.join(await tempDir(), 'worktrees', 'project-1');
});

describe('no prunable worktree entries', () => {
  it('after a landing, a cancel and a blocked task (whose branch stays)', async () => {
    const landed = await prepareTaskTree(opts('landed'));
    const cancelled = await prepareTaskTree(opts('cancelled'));
    const blocked = await prepareTaskTree(opts('blocked'));
    await write(landed.path, 'a.txt', 'a\n');
    await write(blocked.path, 'b.txt', 'b\n');
    expect(await commitTaskTree({ ...opts('landed'), message: 'landed', files: ['a.txt'], lock })).toMatchObject({ status: 'committed' });
    await removeTaskTree(opts('landed'));
    await removeTaskTree(opts('cancelled'));
    expect(await keepWork(opts('blocked'), ['b.txt'], 'troupe: work in progress on blocked')).toBe('troupe/blocked');
    await removeTaskTree(opts('blocked'));
    expect(worktrees()).toEqual([`worktree ${ws}`]);
    expect(prunable()).toEqual([]);
    expect(sh(ws, 'show', 'troupe/blocked:b.txt')).toBe('b');
    expect(cancelled.branch).toBe('troupe/cancelled');
  });

  it('after a crash that removed a tree behind git’s back, once the next tree is made', async () => {
    const lost = await prepareTaskTree(opts('lost'));
    await rm(lost.path, { recursive: true, force: true });
    expect(prunable()).toHaveLength(1);
    await prepareTaskTree(opts('next'));
    expect(prunable()).toEqual([]);
    // The lost task's own next step makes its tree again, as good as new.
    const again = await prepareTaskTree(opts('lost'));
    expect(again.path).toBe(lost.path);
    expect(prunable()).toEqual([]);
    expect(worktrees()).toHaveLength(3);
  });
});

describe('-prev-<n> branches', () => {
  it('only the last one is kept over many retries', async () => {
    for (let i = 1; i <= 5; i++) {
      const t = await prepareTaskTree(opts('r'));
      await write(t.path, 'r.txt', `attempt ${i}\n`);
      expect(await keepWork(opts('r'), ['r.txt'], `troupe: work in progress on r (${i})`)).toBe('troupe/r');
      await removeTaskTree(opts('r'));
    }
    await prepareTaskTree(opts('r'));
    expect(sh(ws, 'branch', '--list', 'troupe/r*', '--format=%(refname:short)').split('\n')).toEqual(['troupe/r', 'troupe/r-prev-5']);
    expect(sh(ws, 'show', 'troupe/r-prev-5:r.txt')).toBe('attempt 5');
  });
});

describe('commit identity', () => {
  it('a workspace with its own user.name and user.email is the author; Troupe is the committer', async () => {
    sh(ws, 'config', 'user.name', 'Ada Lovelace');
    sh(ws, 'config', 'user.email', 'ada@example.org');
    const t = await prepareTaskTree(opts('id'));
    await write(t.path, 'id.txt', 'id\n');
    const landed = await commitTaskTree({ ...opts('id'), message: 'id', files: ['id.txt'], lock });
    expect(landed).toMatchObject({ status: 'committed' });
    expect(people()).toBe('Ada Lovelace <ada@example.org>|Troupe <troupe@localhost>');
    // Also after a rebase onto work that landed meanwhile, and for a blocked task's kept work.
    const [x, y] = await Promise.all([prepareTaskTree(opts('x')), prepareTaskTree(opts('y'))]);
    await write(x.path, 'x.txt', 'x\n');
    await write(y.path, 'y.txt', 'y\n');
    await commitTaskTree({ ...opts('x'), message: 'x', files: ['x.txt'], lock });
    await commitTaskTree({ ...opts('y'), message: 'y', files: ['y.txt'], lock });
    expect(sh(ws, 'log', '-2', '--format=%an|%cn')).toBe('Ada Lovelace|Troupe\nAda Lovelace|Troupe');
    const b = await prepareTaskTree(opts('b'));
    await write(b.path, 'b.txt', 'b\n');
    await keepWork(opts('b'), ['b.txt'], 'troupe: work in progress on b');
    expect(people('troupe/b')).toBe('Ada Lovelace <ada@example.org>|Troupe <troupe@localhost>');
  });

  it('shared mode too', async () => {
    sh(ws, 'config', 'user.name', 'Ada Lovelace');
    sh(ws, 'config', 'user.email', 'ada@example.org');
    await write(ws, 's.txt', 's\n');
    expect(await commitTaskTree({ ...opts('s', 'shared'), message: 's', files: ['s.txt'], lock })).toMatchObject({ status: 'committed' });
    expect(people()).toBe('Ada Lovelace <ada@example.org>|Troupe <troupe@localhost>');
  });

  it('without an identity of its own (or only half of one) Troupe is both', async () => {
    sh(ws, 'config', 'user.name', 'Only A Name');
    const t = await prepareTaskTree(opts('none'));
    await write(t.path, 'n.txt', 'n\n');
    await commitTaskTree({ ...opts('none'), message: 'none', files: ['n.txt'], lock });
    expect(people()).toBe('Troupe <troupe@localhost>|Troupe <troupe@localhost>');
  });
});
