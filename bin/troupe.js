#!/usr/bin/env node
// `troupe`: runs the compiled CLI in dist/src, which `npm ci` builds (the `prepare` script), so
// there is no build step to remember. When that build is missing or older than a file in src/ (a
// checkout or an edit since the last build), it runs the TypeScript sources through tsx instead:
// slower to start (tsx compiles on every start), never out of date.
import { buildIsFresh } from './build-state.js';

if (buildIsFresh()) {
  await import('../dist/src/cli.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli.ts');
}
