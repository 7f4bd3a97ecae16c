// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeBuiltins = ['node:*', 'fs', 'fs/*', 'path', 'child_process', 'net', 'http', 'https', 'crypto', 'os'];

export default tseslint.config(
  { ignores: ['node_modules/', 'drizzle/', '.troupe/', 'coverage/', '.dbg/', 'test/fixtures/', 'dist/', 'test-artifacts/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['*.js', 'bin/*.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // The bug class this project was born from: promises nobody awaits or that land where a
      // callback expects void.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      'no-console': ['error', { allow: ['error', 'warn'] }],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/config.ts'],
    rules: {
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Read configuration through src/config.ts.' }],
    },
  },
  {
    // Statecharts are pure: xstate and their own types only (ARCHITECTURE rule 2).
    files: ['src/machines/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: [...nodeBuiltins, '../*', '!../machines/*'], message: 'src/machines imports xstate and its own files only.' },
          { group: ['drizzle-orm', 'drizzle-orm/*', 'postgres', '@electric-sql/*', '@anthropic-ai/*', 'hono', 'hono/*'], message: 'No I/O in machines.' },
        ],
      }],
      'no-restricted-globals': ['error', 'Date', 'setTimeout', 'setInterval', 'fetch', 'process'],
      'no-restricted-properties': ['error', { object: 'Math', property: 'random' }, { object: 'Date', property: 'now' }, { object: 'process', property: 'env' }],
    },
  },
  {
    // Effects never reach the database or the HTTP layer; persistence arrives injected.
    files: ['src/actors/**/*.ts'],
    ignores: ['src/actors/runtime/**'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['**/db/*', '**/http/*', 'drizzle-orm', 'drizzle-orm/*', 'postgres', '@electric-sql/*', 'hono', 'hono/*'], message: 'Effects get persistence as an injected interface.' }],
      }],
    },
  },
  {
    files: ['src/http/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          {
            group: ['**/machines/*', '**/actors/model/*', '**/actors/workspace/*', '**/actors/testing/*', '**/actors/worker-effects*', '**/actors/keyed-mutex*'],
            message: 'http talks to the runtime interface only.',
          },
        ],
      }],
    },
  },
  {
    // The CLI talks to its user on stdout.
    files: ['src/cli.ts', 'src/cli/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      'no-console': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Fakes implement async interfaces with synchronous bodies.
      '@typescript-eslint/require-await': 'off',
    },
  },
);
