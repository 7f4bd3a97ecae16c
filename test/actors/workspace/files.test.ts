import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { applyFiles, LIMITS, type ProposedFile } from '../../../src/actors/workspace/files.ts';
import { removeTempDirs, snapshot, tempDir } from './helpers.ts';

let root: string;
let outside: string;

beforeEach(async () => {
  root = await tempDir();
  outside = await tempDir();
  await writeFile(path.join(outside, 'sentinel.txt'), 'outside\n');
  await writeFile(path.join(root, 'existing.txt'), 'old\n');
  await mkdir(path.join(root, 'dir'));
  await mkdir(path.join(root, '.git'));
  await writeFile(path.join(root, '.git', 'config'), '[core]\n');
  await symlink(outside, path.join(root, 'link-out'));
  await symlink(path.join(outside, 'sentinel.txt'), path.join(root, 'file-link'));
  await symlink('.git', path.join(root, 'git-link'));
});
afterEach(removeTempDirs);

const good = (p: string): ProposedFile => ({ path: p, action: 'create', content: `good ${p}\n` });

describe('applyFiles refuses and writes nothing', () => {
  const cases: [string, ProposedFile, RegExp][] = [
    ['parent segment', good('../x'), /\.\./],
    ['parent segment in the middle', good('a/../../x'), /\.\./],
    ['absolute path', good('/etc/passwd'), /absolute/],
    ['windows drive path', good('C:\\x'), /backslash|absolute/],
    ['UNC path', good('\\\\server\\x'), /backslash/],
    ['backslash separator', good('a\\b.txt'), /backslash/],
    ['.git directory', good('.git/config'), /\.git/],
    ['.git in any case, anywhere', good('sub/.GIT/x'), /\.git/],
    ['.git with a trailing dot', good('sub/.git./x'), /\.git/],
    ['NUL byte', good('a\0b.txt'), /NUL/],
    ['empty path', good(''), /empty/],
    ['only dots and slashes', good('./'), /root/],
    ['symlinked dir leading outside', good('link-out/new.txt'), /outside/],
    ['symlinked file leading outside', { path: 'file-link', action: 'modify', content: 'pwned\n' }, /outside/],
    ['delete through a symlink leading outside', { path: 'link-out/sentinel.txt', action: 'delete' }, /outside/],
    ['symlink into .git', good('git-link/config'), /\.git/],
    ['an ancestor is a file', good('existing.txt/child.txt'), /not a directory/],
    ['writing onto a directory', good('dir'), /directory/],
    ['deleting a directory', { path: 'dir', action: 'delete' }, /directory/],
    ['create without content', { path: 'nocontent.txt', action: 'create' }, /without content/],
    ['content over 1 MiB', { path: 'big.txt', action: 'create', content: 'é'.repeat(LIMITS.maxFileBytes / 2 + 1) }, /bytes/],
  ];

  it.each(cases)('%s', async (_name, bad, reason) => {
    const before = { root: snapshot(root), outside: snapshot(outside) };
    // One bad file between good ones, including a good one in a new nested directory.
    const result = await applyFiles(root, [good('first.txt'), good('new/deep/second.txt'), bad, good('third.txt')]);
    expect(result).toMatchObject({ ok: false, reason: expect.stringMatching(reason) as unknown });
    expect(result.ok === false && result.fatal).toBeFalsy();
    expect(snapshot(root)).toEqual(before.root);
    expect(snapshot(outside)).toEqual(before.outside);
    expect(existsSync(path.join(root, 'first.txt'))).toBe(false);
    expect(existsSync(path.join(root, 'new'))).toBe(false);
  });

  it('names the offending path', async () => {
    const result = await applyFiles(root, [good('ok.txt'), good('x/../../escape.txt')]);
    expect(result).toEqual({ ok: false, reason: 'path contains a ".." segment', path: 'x/../../escape.txt' });
  });

  it.each([
    ['same path twice', ['a.txt', 'a.txt']],
    ['same path after normalisation', ['a.txt', './a.txt']],
    ['same path through an in-workspace symlink', ['dir/f.txt', 'dir-link/f.txt']],
    ['a file and a directory of the same name', ['x', 'x/y.txt']],
    ['a directory and a file of the same name', ['x/y.txt', 'x']],
  ])('duplicate: %s', async (_name, paths) => {
    await symlink('dir', path.join(root, 'dir-link'));
    const before = snapshot(root);
    const result = await applyFiles(root, paths.map(good));
    expect(result).toMatchObject({ ok: false, path: paths[1] });
    expect(snapshot(root)).toEqual(before);
  });

  it('more than 200 files', async () => {
    const before = snapshot(root);
    const files = Array.from({ length: LIMITS.maxFiles + 1 }, (_, i) => good(`f${i}.txt`));
    expect(await applyFiles(root, files)).toMatchObject({ ok: false, reason: expect.stringContaining('too many files') as unknown });
    expect(snapshot(root)).toEqual(before);
    expect((await applyFiles(root, files.slice(1))).ok).toBe(true);
  });

  it('a missing workspace is fatal', async () => {
    const result = await applyFiles(path.join(root, 'nope'), [good('a.txt')]);
    expect(result).toMatchObject({ ok: false, fatal: true, reason: expect.stringContaining('workspace missing') as unknown });
    expect(existsSync(path.join(root, 'nope'))).toBe(false);
  });

  it('a workspace that is a file is fatal', async () => {
    expect(await applyFiles(path.join(root, 'existing.txt'), [])).toMatchObject({ ok: false, fatal: true });
  });
});

describe('applyFiles writes a good batch', () => {
  it('creates, modifies and deletes, making nested directories', async () => {
    await writeFile(path.join(root, 'gone.txt'), 'bye\n');
    const result = await applyFiles(root, [
      { path: 'src/lib/util.js', action: 'create', content: 'export const x = "é";\n' },
      { path: 'existing.txt', action: 'modify', content: 'new\n' },
      { path: './notes//todo.md', action: 'modify', content: '' },
      { path: 'gone.txt', action: 'delete' },
      { path: 'never-was.txt', action: 'delete' },
    ]);
    expect(result).toEqual({
      ok: true,
      files: [
        { path: 'src/lib/util.js', action: 'create', bytes: 23 },
        { path: 'existing.txt', action: 'modify', bytes: 4 },
        { path: 'notes/todo.md', action: 'modify', bytes: 0 },
        { path: 'gone.txt', action: 'delete', bytes: 0 },
        { path: 'never-was.txt', action: 'delete', bytes: 0 },
      ],
    });
    expect(await readFile(path.join(root, 'src/lib/util.js'), 'utf8')).toBe('export const x = "é";\n');
    expect(await readFile(path.join(root, 'existing.txt'), 'utf8')).toBe('new\n');
    expect(await readFile(path.join(root, 'notes/todo.md'), 'utf8')).toBe('');
    expect(existsSync(path.join(root, 'gone.txt'))).toBe(false);
    expect(existsSync(path.join(root, 'never-was.txt'))).toBe(false);
    expect(tempFiles(root)).toEqual([]);
  });

  it('an empty list writes nothing and succeeds', async () => {
    const before = snapshot(root);
    expect(await applyFiles(root, [])).toEqual({ ok: true, files: [] });
    expect(snapshot(root)).toEqual(before);
  });

  it('keeps the mode of a replaced file, so scripts stay executable', async () => {
    await writeFile(path.join(root, 'run.sh'), 'echo old\n');
    await chmod(path.join(root, 'run.sh'), 0o755);
    expect((await applyFiles(root, [{ path: 'run.sh', action: 'modify', content: 'echo new\n' }])).ok).toBe(true);
    expect((await stat(path.join(root, 'run.sh'))).mode & 0o777).toBe(0o755);
  });

  it('writes through a symlink that stays inside the workspace and keeps the link', async () => {
    await writeFile(path.join(root, 'dir', 'real.txt'), 'old\n');
    await symlink('dir/real.txt', path.join(root, 'alias.txt'));
    expect((await applyFiles(root, [{ path: 'alias.txt', action: 'modify', content: 'via link\n' }])).ok).toBe(true);
    expect(await readFile(path.join(root, 'dir', 'real.txt'), 'utf8')).toBe('via link\n');
    expect(snapshot(root)).toContain('alias.txt -> dir/real.txt');
  });
});

describe('applyFiles and abort', () => {
  it('an abort during staging removes every temp file and new directory', async () => {
    const before = snapshot(root);
    const controller = new AbortController();
    const signal = controller.signal;
    const original = signal.throwIfAborted.bind(signal);
    // Abort as soon as staging has put a temp file on disk: between two file operations.
    vi.spyOn(signal, 'throwIfAborted').mockImplementation(() => {
      if (tempFiles(root).length > 0) controller.abort(new Error('cancelled by test'));
      original();
    });
    const files = ['a/one.txt', 'a/b/two.txt', 'three.txt', 'c/four.txt'].map(good);
    await expect(applyFiles(root, files, signal)).rejects.toThrow('cancelled by test');
    expect(tempFiles(root)).toEqual([]);
    expect(snapshot(root)).toEqual(before);
  });

  it('an already aborted signal writes nothing', async () => {
    const before = snapshot(root);
    await expect(applyFiles(root, [good('a.txt')], AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });
    expect(snapshot(root)).toEqual(before);
  });
});

function tempFiles(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((p) => /\.troupe-[0-9a-f]+\.tmp$/.test(p));
}

describe('tasks writing into one shared workspace at once', () => {
  it('both succeed when they create the same new directories concurrently', async () => {
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) => applyFiles(root, [{ path: `shared/deep/dir/f${i}.txt`, action: 'create', content: `${i}\n` }])),
    );
    expect(results.every((r) => r.ok)).toBe(true);
    expect(readdirSync(path.join(root, 'shared/deep/dir')).sort()).toEqual(Array.from({ length: 16 }, (_, i) => `f${i}.txt`).sort());
  });
});

