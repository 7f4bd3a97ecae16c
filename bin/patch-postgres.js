#!/usr/bin/env node
/**
 * Guards postgres.js 3.4.x against a crash on a lost connection (porsager/postgres#1208, #1154;
 * fix proposed upstream in #1209, not released as of 3.4.9). When Postgres goes away while a
 * transaction is open, the driver's `begin()` sends `rollback` on the dead connection; the write
 * reaches `nextWrite` with `socket === null` and throws a TypeError from a `setImmediate`, which
 * no caller can catch: the whole `troupe serve` process exits 1 instead of retrying the write.
 * The guard settles the pending queries with `CONNECTION_CLOSED` instead, which `withDbRetry`
 * retries. Idempotent; run from `postinstall`. Seen by test/faults/postgres-restart.postgres.test.ts.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath, URL } from 'node:url';

const UNGUARDED = `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`;
const GUARDED = `  function nextWrite(fn) {
    if (socket === null) { // troupe: bin/patch-postgres.js (porsager/postgres#1208)
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options))
      return false
    }
    const x = socket.write(chunk, fn)`;

const root = fileURLToPath(new URL('../node_modules/postgres/', import.meta.url));
for (const file of ['src/connection.js', 'cjs/src/connection.js']) {
  const at = path.join(root, file);
  if (!existsSync(at)) continue;
  const text = readFileSync(at, 'utf8');
  if (text.includes(GUARDED)) continue;
  if (!text.includes(UNGUARDED)) {
    process.stderr.write(`patch-postgres: ${at} has changed; check whether porsager/postgres#1208 is fixed there\n`);
    continue;
  }
  writeFileSync(at, text.replace(UNGUARDED, GUARDED));
  process.stderr.write(`patch-postgres: guarded nextWrite in ${path.relative(process.cwd(), at)}\n`);
}
