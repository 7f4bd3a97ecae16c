import { describe, expect, it } from 'vitest';
import { configSchema, createProjectSchema, DEFAULT_PROTECTED_PATHS, fillConfig, issuesOf, normalizeConfig, splitCommand, taskInputSchema } from '../../src/domain/inputs.ts';

describe('test command splitting', () => {
  it('splits like a shell (quotes, escapes) without running one', () => {
    expect(splitCommand(`node --test "a b.test.js" 'c d' e\\ f`)).toEqual({ ok: true, argv: ['node', '--test', 'a b.test.js', 'c d', 'e f'] });
    expect(splitCommand('npm test -- $HOME')).toEqual({ ok: true, argv: ['npm', 'test', '--', '$HOME'] });
    expect(splitCommand('node --test test/*.test.js')).toEqual({ ok: true, argv: ['node', '--test', 'test/*.test.js'] });
  });

  it('refuses shell operators, redirections and comments instead of ignoring them', () => {
    expect(splitCommand('npm test && rm -rf /')).toMatchObject({ ok: false, reason: expect.stringContaining('&&') as string });
    expect(splitCommand('npm test > out.txt')).toMatchObject({ ok: false });
    expect(splitCommand('npm test | tee log')).toMatchObject({ ok: false });
    expect(splitCommand('npm test # all')).toMatchObject({ ok: false });
    expect(splitCommand('   ')).toMatchObject({ ok: false, reason: 'the command is empty' });
  });
});

describe('project create body', () => {
  it('accepts a string or an argv array', () => {
    expect(createProjectSchema.parse({ name: 'p', testCommand: 'npm test' }).testCommand).toEqual(['npm', 'test']);
    expect(createProjectSchema.parse({ name: 'p', testCommand: ['npm', 'test'] }).testCommand).toEqual(['npm', 'test']);
  });

  it('rejects unknown fields and out-of-range config, naming the fields', () => {
    const r = createProjectSchema.safeParse({ name: '', testCommand: 'x', colour: 'red', config: { maxConcurrency: 0, maxAgents: 65, extra: 1 } });
    expect(r.success).toBe(false);
    const paths = issuesOf(r.error!).map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['name', 'config.maxConcurrency', 'config.maxAgents']));
    expect(issuesOf(r.error!).some((i) => i.message.includes('colour') || i.path === 'colour' || i.path === '(body)')).toBe(true);
  });

  it('fills every default, worktree isolation only for git workspaces', () => {
    expect(fillConfig(undefined, true)).toEqual({
      maxConcurrency: 3,
      maxAgents: 6,
      maxCorrectionAttempts: 3,
      budgetUsd: null,
      testTimeoutMs: 300_000,
      isolation: 'worktree',
      models: { lead: 'claude-sonnet-4-6', backend: 'claude-sonnet-4-6', frontend: 'claude-sonnet-4-6', test: 'claude-sonnet-4-6' },
      sandbox: { mode: 'bwrap', network: false },
      review: 'protected',
      protectedPaths: [...DEFAULT_PROTECTED_PATHS],
    });
    expect(DEFAULT_PROTECTED_PATHS).toEqual(expect.arrayContaining(['package.json', '**/vitest.config.*', '**/jest.config.*', '**/.mocharc*', 'pytest.ini', 'pyproject.toml', 'setup.cfg', 'tox.ini', '**/conftest.py', 'Makefile', '.github/**']));
    // TROUPE_SANDBOX decides the default mode; a stored project keeps its own.
    expect(fillConfig(undefined, true, undefined, { sandboxMode: 'none' }).sandbox).toEqual({ mode: 'none', network: false });
    expect(fillConfig({ sandbox: { network: true } }, true, fillConfig(undefined, true, undefined, { sandboxMode: 'none' })).sandbox).toEqual({ mode: 'none', network: true });
    expect(normalizeConfig({ maxAgents: 2 })).toMatchObject({ maxAgents: 2, sandbox: { mode: 'bwrap', network: false }, review: 'protected' });
    expect(configSchema.safeParse({ review: 'sometimes' }).success).toBe(false);
    expect(configSchema.safeParse({ sandbox: { mode: 'docker' } }).success).toBe(false);
    expect(configSchema.safeParse({ sandbox: { mode: 'none', extra: 1 } }).success).toBe(false);
    expect(fillConfig({ isolation: 'worktree' }, false).isolation).toBe('shared');
    const base = fillConfig({ budgetUsd: 5, maxAgents: 2 }, true);
    expect(fillConfig({ budgetUsd: 10 }, true, base)).toMatchObject({ budgetUsd: 10, maxAgents: 2 });
  });
});

describe('task input', () => {
  it('applies defaults and checks the key pattern', () => {
    expect(taskInputSchema.parse({ key: 'a.b-c_1', title: 'T', description: '' })).toEqual({ key: 'a.b-c_1', title: 'T', description: '', dependsOn: [], priority: 2 });
    expect(taskInputSchema.safeParse({ key: 'has space', title: 'T', description: '' }).success).toBe(false);
    expect(taskInputSchema.safeParse({ key: 'x'.repeat(65), title: 'T', description: '' }).success).toBe(false);
    expect(taskInputSchema.safeParse({ key: 'a', title: 'T', description: 'x'.repeat(20_001) }).success).toBe(false);
    expect(taskInputSchema.safeParse({ key: 'a', title: 'T', description: '', priority: 5 }).success).toBe(false);
  });
});
