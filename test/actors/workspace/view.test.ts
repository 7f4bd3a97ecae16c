import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeWorkspace } from '../../../src/actors/workspace/view.ts';
import { removeTempDirs, tempDir } from './helpers.ts';

let root: string;
const put = async (rel: string, content: string | Buffer) => {
  await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
  await writeFile(path.join(root, rel), content);
};
/** The file paths of the "--- path ---" sections, in order. */
const sections = (text: string) => [...text.matchAll(/^--- (.+) ---$/gm)].map((m) => m[1]);
const listing = (text: string) => text.split('\n\n')[0]!.split('\n').slice(1);

beforeEach(async () => {
  root = await tempDir();
});
afterEach(removeTempDirs);

describe('describeWorkspace', () => {
  it('lists files sorted, skipping dependency, build, VCS and hidden directories but not .github', async () => {
    await put('src/server.js', 'export {};\n');
    await put('src/a/b.js', 'b\n');
    await put('package.json', '{"name":"x"}\n');
    await put('.github/workflows/ci.yml', 'on: push\n');
    await put('.gitignore', 'node_modules\n');
    for (const skipped of ['node_modules/lib/index.js', 'dist/out.js', 'build/x.js', 'coverage/c.json', '.troupe/db', '.git/HEAD', '.cache/x', '.vscode/settings.json']) {
      await put(skipped, 'skip\n');
    }
    const text = await describeWorkspace(root);
    expect(listing(text)).toEqual(['.github/workflows/ci.yml', '.gitignore', 'package.json', 'src/a/b.js', 'src/server.js']);
    expect(text.startsWith('Files in the workspace (5):\n')).toBe(true);
    expect(text).not.toContain('skip');
  });

  it('shows hinted files first, then source files smallest first, and formats each section', async () => {
    await put('README.md', 'readme readme readme\n');
    await put('src/tiny.ts', 'x\n');
    await put('src/mid.ts', 'export const mid = 1;\n');
    await put('src/routes/users.js', 'module.exports = "a much longer users file";\n');
    await put('data.bin', 'not source\n');
    const text = await describeWorkspace(root, { hints: ['Fix', 'the', '`users.js`', 'route'] });
    expect(sections(text)).toEqual(['src/routes/users.js', 'src/tiny.ts', 'README.md', 'src/mid.ts']);
    expect(text).toContain('\n--- src/tiny.ts ---\nx\n');
  });

  it('matches a hint against the full path or a stem word', async () => {
    await put('lib/a/util.js', 'a\n');
    await put('lib/b/util.js', 'b\n');
    await put('lib/zzz-unrelated.js', '1\n');
    await put('lib/parser.py', 'def parse(): pass\n');
    const text = await describeWorkspace(root, { hints: ['lib/b/util.js', 'parser'] });
    expect(sections(text).slice(0, 2)).toEqual(['lib/b/util.js', 'lib/parser.py']);
  });

  it('skips binary files, files over 64 KB, lock files and symlinks', async () => {
    await put('image.js', Buffer.from([0x47, 0x49, 0x46, 0x00, 0x01]));
    await put('huge.js', `// ${'x'.repeat(70_000)}\n`);
    await put('package-lock.json', '{}\n');
    await put('ok.js', 'ok\n');
    await symlink('/etc/hostname', path.join(root, 'linked.js'));
    const text = await describeWorkspace(root, { maxBytes: 200_000 });
    expect(listing(text)).toEqual(['huge.js', 'image.js', 'linked.js', 'ok.js', 'package-lock.json']);
    expect(sections(text)).toEqual(['ok.js']);
  });

  it('stays within the byte budget, fitting smaller files when a bigger one does not fit', async () => {
    await put('a.js', `${'a'.repeat(300)}\n`);
    await put('b.js', `${'b'.repeat(600)}\n`);
    await put('c.js', `${'c'.repeat(50)}\n`);
    const text = await describeWorkspace(root, { maxBytes: 500, hints: ['b.js'] });
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(500);
    expect(sections(text)).toEqual(['c.js', 'a.js']);
  });

  it('cuts the listing at maxEntries with a note', async () => {
    for (let i = 0; i < 12; i += 1) await put(`f${String(i).padStart(2, '0')}.txt`, `${i}\n`);
    const text = await describeWorkspace(root, { maxEntries: 5 });
    expect(listing(text)).toEqual(['f00.txt', 'f01.txt', 'f02.txt', 'f03.txt', 'f04.txt', '(7 more files not shown)']);
  });

  it('is deterministic and says when the workspace is empty', async () => {
    expect(await describeWorkspace(root)).toBe('The workspace is empty.\n');
    await put('b/z.js', 'z\n');
    await put('a.js', 'a\n');
    await put('b.js', 'b\n');
    const first = await describeWorkspace(root);
    expect(await describeWorkspace(root)).toBe(first);
    expect(listing(first)).toEqual(['a.js', 'b.js', 'b/z.js']);
  });
});
