/**
 * A child process for the data-dir lock tests: on each "lock" line on stdin it tries to take the
 * data dir given as its argument and prints one JSON line (`{"won":true}` or the refusal);
 * "release" releases it. Run with `node --import tsx`.
 */
import { createInterface } from 'node:readline';
import { DataDirLockedError, lockDataDir, type DataDirLock } from '../../src/datadir-lock.ts';

const dataDir = process.argv[2]!;
let lock: DataDirLock | null = null;
const say = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ pid: process.pid, ...line })}\n`);

for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'lock') {
    try {
      lock = await lockDataDir(dataDir);
      say({ won: true });
    } catch (e) {
      if (!(e instanceof DataDirLockedError)) throw e;
      say({ won: false, holder: e.holder?.pid ?? null, message: e.message });
    }
  } else if (line === 'release') {
    lock?.release();
    lock = null;
    say({ released: true });
  }
}
