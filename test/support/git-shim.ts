/**
 * A `git` on PATH that holds every `git rebase` (the merge of a task into the workspace) while a
 * file exists: a precise place to crash a process or to race a cancel.
 */
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface GitShim {
  /** Prepend to PATH. */
  dir: string;
  /** While this file exists, `git rebase` waits. */
  hold: string;
  /** Created by the shim when a rebase is being held. */
  held: string;
}

export async function makeGitShim(parent: string): Promise<GitShim> {
  const realGit = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
  const dir = path.join(parent, 'git-shim');
  await mkdir(dir, { recursive: true });
  const hold = path.join(dir, 'hold');
  const held = path.join(dir, 'held');
  await writeFile(
    path.join(dir, 'git'),
    `#!/bin/sh
for arg in "$@"; do
  if [ "$arg" = "rebase" ] && [ -e '${hold}' ]; then
    touch '${held}'
    while [ -e '${hold}' ]; do sleep 0.05; done
  fi
done
exec '${realGit}' "$@"
`,
  );
  await chmod(path.join(dir, 'git'), 0o755);
  return { dir, hold, held };
}
