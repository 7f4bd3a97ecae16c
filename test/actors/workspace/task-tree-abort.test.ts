import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import type * as GitModule from '../../../src/actors/workspace/git.ts';
import { applyFiles } from '../../../src/actors/workspace/files.ts';
import { commitTaskTree, prepareTaskTree, type TaskTreeOptions } from '../../../src/actors/workspace/task-tree.ts';
import { mutex, removeTempDirs, repoWith, sh, tempDir } from './helpers.ts';

const hooks = vi.hoisted(() => ({ onRebaseStarted: undefined as (() => void) | undefined }));

// Cancels at the one moment a test cannot otherwise reach: right after `git rebase` was spawned.
vi.mock('../../../src/actors/workspace/git.ts', async (importOriginal) => {
  const actual = await importOriginal<typeof GitModule>();
  const git: typeof actual.git = (args, opts) => {
    const running = actual.git(args, opts);
    if (args[0] === 'rebase' && args[1] !== '--abort') hooks.onRebaseStarted?.();
    return running;
  };
  return { ...actual, git };
});

afterEach(removeTempDirs);

it('an abort during the rebase leaves the workspace and the task branch consistent, and a retry merges', async () => {
  const ws = await repoWith({ 'README.md': 'hello\n' });
  const worktreesDir = path.join(await tempDir(), 'worktrees');
  const { lock } = mutex();
  const opts = (key: string): TaskTreeOptions => ({ workspace: ws, isolation: 'worktree', worktreesDir, key });
  const [a, b] = await Promise.all([prepareTaskTree(opts('a')), prepareTaskTree(opts('b'))]);
  await applyFiles(a.path, [{ path: 'a.txt', action: 'create', content: 'a\n' }]);
  await applyFiles(b.path, [{ path: 'b.txt', action: 'create', content: 'b\n' }]);
  expect(await commitTaskTree({ ...opts('a'), message: 'task a', lock })).toMatchObject({ status: 'committed' });
  const headAfterA = sh(ws, 'rev-parse', 'HEAD');

  const controller = new AbortController();
  hooks.onRebaseStarted = () => controller.abort();
  await expect(commitTaskTree({ ...opts('b'), message: 'task b', lock, signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
  hooks.onRebaseStarted = undefined;

  expect(sh(ws, 'rev-parse', 'HEAD')).toBe(headAfterA);
  expect(sh(ws, 'status', '--porcelain')).toBe('');
  expect(sh(b.path, 'status', '--porcelain')).toBe('');
  expect(sh(ws, 'branch', '--show-current')).toBe('main');
  expect(sh(b.path, 'branch', '--show-current')).toBe('troupe/b');
  expect(sh(ws, 'log', '-1', '--format=%s', 'troupe/b')).toBe('task b');

  const retry = await commitTaskTree({ ...opts('b'), message: 'task b', lock });
  expect(retry).toMatchObject({ status: 'committed', files: ['b.txt'] });
  expect(sh(ws, 'rev-list', '--count', `${headAfterA}..HEAD`)).toBe('1');
  expect(await readFile(path.join(ws, 'b.txt'), 'utf8')).toBe('b\n');
});
