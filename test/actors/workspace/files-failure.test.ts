import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import type * as FsPromises from 'node:fs/promises';
import path from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { applyFiles } from '../../../src/actors/workspace/files.ts';
import { removeTempDirs, snapshot, tempDir } from './helpers.ts';

// A full disk cannot be produced on demand (and chmod cannot refuse root, who runs CI here), so
// writes into any directory called `full-disk` fail the way the kernel would report it.
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof FsPromises>();
  const writeFile: typeof actual.writeFile = async (file, data, options) => {
    if (typeof file === 'string' && file.includes(`${path.sep}full-disk${path.sep}`)) {
      throw Object.assign(new Error('ENOSPC: no space left on device, open'), { code: 'ENOSPC' });
    }
    return actual.writeFile(file, data, options);
  };
  return { ...actual, writeFile, default: { ...actual, writeFile } };
});

afterEach(removeTempDirs);

it('a write that fails while staging leaves no temp files, no new directories and no written files', async () => {
  const root = await tempDir();
  await mkdir(path.join(root, 'full-disk'));
  await writeFile(path.join(root, 'keep.txt'), 'unchanged\n');
  const before = snapshot(root);
  const result = await applyFiles(root, [
    { path: 'keep.txt', action: 'modify', content: 'changed\n' },
    { path: 'new/dir/a.txt', action: 'create', content: 'a\n' },
    { path: 'full-disk/b.txt', action: 'create', content: 'b\n' },
    { path: 'later.txt', action: 'create', content: 'c\n' },
  ]);
  expect(result).toMatchObject({ ok: false, fatal: true, path: 'full-disk/b.txt', reason: expect.stringContaining('ENOSPC') as unknown });
  expect(snapshot(root)).toEqual(before);
  expect(existsSync(path.join(root, 'new'))).toBe(false);
  expect(readdirSync(root, { recursive: true })).not.toContainEqual(expect.stringMatching(/\.tmp$/));
});
