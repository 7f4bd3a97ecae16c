import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { git, isGitRepo } from '../../../src/actors/workspace/git.ts';
import { ensureWorkspace, INITIAL_COMMIT_MESSAGE, WorkspaceError } from '../../../src/actors/workspace/workspace.ts';
import { removeTempDirs, repoWith, sh, tempDir } from './helpers.ts';

afterEach(removeTempDirs);

describe('git', () => {
  it('returns a non-zero exit code instead of throwing', async () => {
    const dir = await tempDir();
    const result = await git(['rev-parse', 'HEAD'], { cwd: dir });
    expect(result.code).toBeGreaterThan(0);
    expect(result.stderr).toMatch(/not a git repository/);
  });

  it('passes only an allowlisted environment: no API keys reach git or what it runs', async () => {
    const dir = await tempDir();
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', ANTHROPIC_API_KEY: 'sk-secret', DATABASE_URL: 'postgres://x', GIT_DIR: '/elsewhere' };
    // A `!` alias runs through a shell with git's own environment: the easiest way to observe it.
    const result = await git(['-c', 'alias.showenv=!env', 'showenv'], { cwd: dir, env });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('GIT_TERMINAL_PROMPT=0');
    expect(result.stdout).not.toContain('sk-secret');
    expect(result.stdout).not.toContain('postgres://');
    expect(result.stdout).not.toContain('GIT_DIR=/elsewhere');
  });

  it('never runs the repository hooks', async () => {
    const dir = await repoWith({ 'a.txt': 'a\n' });
    const hook = path.join(dir, '.git', 'hooks', 'pre-commit');
    await writeFile(hook, `#!/bin/sh\ntouch "${path.join(dir, 'hook-ran')}"\nexit 1\n`);
    await chmod(hook, 0o755);
    await writeFile(path.join(dir, 'a.txt'), 'b\n');
    expect((await git(['commit', '-q', '-am', 'change'], { cwd: dir })).code).toBe(0);
    expect(existsSync(path.join(dir, 'hook-ran'))).toBe(false);
    expect(sh(dir, 'log', '-1', '--format=%an <%ae>')).toBe('Troupe <troupe@localhost>');
  });

  it('rejects when aborted', async () => {
    const dir = await tempDir();
    await expect(git(['status'], { cwd: dir, signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('an abort lets the running command finish (no stale lock files), then rejects', async () => {
    const dir = await tempDir();
    const controller = new AbortController();
    const running = git(['-c', 'alias.slow=!sleep 0.3 && echo done > finished', 'slow'], { cwd: dir, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await expect(running).rejects.toMatchObject({ name: 'AbortError' });
    expect(existsSync(path.join(dir, 'finished'))).toBe(true);
  });

  it('an aborted command that outlives its grace period is killed', async () => {
    const dir = await tempDir();
    const started = Date.now();
    const running = git(['-c', 'alias.slow=!exec sleep 5', 'slow'], { cwd: dir, signal: AbortSignal.timeout(50), abortGraceMs: 0 });
    await expect(running).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('isGitRepo is true only at the top of a work tree', async () => {
    const dir = await repoWith({ 'sub/a.txt': 'a\n' });
    expect(await isGitRepo(dir)).toBe(true);
    expect(await isGitRepo(path.join(dir, 'sub'))).toBe(false);
    expect(await isGitRepo(path.join(dir, 'missing'))).toBe(false);
    expect(await isGitRepo(await tempDir())).toBe(false);
  });
});

describe('ensureWorkspace', () => {
  it('creates the directory, git-inits it on main and adds an initial commit', async () => {
    const dir = path.join(await tempDir(), 'new', 'project');
    const ws = await ensureWorkspace(dir, { create: true });
    expect(ws).toEqual({ path: dir, git: true });
    expect(sh(dir, 'branch', '--show-current')).toBe('main');
    expect(sh(dir, 'log', '--format=%s')).toBe(INITIAL_COMMIT_MESSAGE);
    expect(sh(dir, 'ls-tree', '-r', 'HEAD')).toBe('');
  });

  it('gives its own repository to a directory inside another repository', async () => {
    const outer = await repoWith({ 'x.txt': 'x\n' });
    const inner = path.join(outer, 'data', 'workspace');
    expect((await ensureWorkspace(inner, { create: true })).git).toBe(true);
    expect(sh(inner, 'rev-parse', '--show-toplevel')).toBe(inner);
    expect(sh(outer, 'rev-list', '--count', 'HEAD')).toBe('1');
  });

  it('adds the initial commit to an existing unborn repository without committing what was staged', async () => {
    const dir = await tempDir();
    sh(dir, 'init', '-q', '-b', 'trunk');
    await writeFile(path.join(dir, 'staged.txt'), 'mine\n');
    sh(dir, 'add', 'staged.txt');
    expect(await ensureWorkspace(dir, { create: false })).toEqual({ path: dir, git: true });
    expect(sh(dir, 'log', '--format=%s', 'trunk')).toBe(INITIAL_COMMIT_MESSAGE);
    expect(sh(dir, 'ls-tree', '-r', '--name-only', 'HEAD')).toBe('');
    expect(sh(dir, 'diff', '--cached', '--name-only')).toBe('staged.txt');
  });

  it('leaves a repository with commits alone', async () => {
    const dir = await repoWith({ 'a.txt': 'a\n' });
    const head = sh(dir, 'rev-parse', 'HEAD');
    await ensureWorkspace(dir, { create: true });
    expect(sh(dir, 'rev-parse', 'HEAD')).toBe(head);
  });

  it('reports a plain directory as not git when create is false', async () => {
    const dir = await tempDir();
    await mkdir(path.join(dir, 'plain'));
    expect(await ensureWorkspace(path.join(dir, 'plain'), { create: false })).toEqual({ path: path.join(dir, 'plain'), git: false });
    expect(existsSync(path.join(dir, 'plain', '.git'))).toBe(false);
  });

  it('throws a fatal WorkspaceError for a missing directory when create is false', async () => {
    const dir = path.join(await tempDir(), 'missing');
    const error = await ensureWorkspace(dir, { create: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkspaceError);
    expect(error).toMatchObject({ fatal: true, message: expect.stringContaining(`workspace missing: ${dir}`) as unknown });
    expect(existsSync(dir)).toBe(false);
  });
});
