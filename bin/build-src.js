#!/usr/bin/env node
// `npm run build:src`: compiles src/ to dist/src (tsconfig.build.json: emit only, incremental, so
// an unchanged tree takes about two seconds), then writes the stamp bin/troupe.js checks, dated to
// when this build started (see build-state.js). Run by `npm ci` (prepare), `npm run build`, the
// test suite's global setup and the scripts that measure the compiled start.
import { spawnSync } from 'node:child_process';
import { renameSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import process from 'node:process';
import { ROOT, STAMP } from './build-state.js';

const started = new Date();
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const result = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'inherit' });
if (result.status !== 0) {
  process.stderr.write(`troupe: compiling src/ failed (tsc exited ${result.status ?? result.signal}); bin/troupe.js runs the sources until a build succeeds\n`);
  process.exit(1);
}
// Written aside and renamed, so a reader never sees a stamp dated to now rather than to `started`.
const next = `${STAMP}.${process.pid}`;
writeFileSync(next, `${started.toISOString()}\n`);
utimesSync(next, started, started);
renameSync(next, STAMP);
