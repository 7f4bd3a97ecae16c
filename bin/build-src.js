#!/usr/bin/env node
// `npm run build:src`: compiles src/ to dist/src (tsconfig.build.json: emit only, incremental, so
// an unchanged tree takes about two seconds), then writes the stamp bin/troupe.js checks, dated to
// when this build started (see build-state.js). Run by `npm ci` (prepare), `npm run build`, the
// test suite's global setup and the scripts that measure the compiled start.
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import process from 'node:process';
import { ROOT, STAMP } from './build-state.js';

// One build at a time (two test runs starting together): a build that started before a source
// was saved must not write its older output over a newer build's and then look up to date.
const LOCK = path.join(ROOT, 'dist', '.build-src.lock');
const LOCK_STALE_MS = 120_000;

function lock() {
  mkdirSync(path.dirname(LOCK), { recursive: true });
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      mkdirSync(LOCK);
      return;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      // A build killed half-way leaves its lock behind: no build takes two minutes.
      const age = Date.now() - (statSync(LOCK, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > LOCK_STALE_MS) rmSync(LOCK, { recursive: true, force: true });
      else Atomics.wait(pause, 0, 0, 100);
    }
  }
}

lock();
try {
  const started = new Date();
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'inherit' });
  if (result.status !== 0) {
    process.stderr.write(`troupe: compiling src/ failed (tsc exited ${result.status ?? result.signal}); bin/troupe.js runs the sources until a build succeeds\n`);
    process.exitCode = 1;
  } else {
    // Written aside and renamed, so a reader never sees a stamp dated to now rather than to `started`.
    const next = `${STAMP}.${process.pid}`;
    writeFileSync(next, `${started.toISOString()}\n`);
    utimesSync(next, started, started);
    renameSync(next, STAMP);
  }
} finally {
  rmSync(LOCK, { recursive: true, force: true });
}
