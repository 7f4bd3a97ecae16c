#!/usr/bin/env node
// Runs the TypeScript CLI through tsx so `npx troupe …` and `npm start` work right after
// `npm ci`, with no build step to remember.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
