import { describe, expect, it } from 'vitest';
import { inferAgentType } from '../../src/domain/agent-type.ts';

describe('agent type inference', () => {
  it.each([
    ['Write unit tests for the parser', '', 'test'],
    ['Add e2e coverage', 'with playwright', 'test'],
    ['Build the settings page', 'a React component with a form', 'frontend'],
    ['Style the login button', '', 'frontend'],
    ['Add a REST endpoint', 'store rows in the database', 'backend'],
    ['Refactor the billing module', '', 'backend'],
  ] as const)('%s → %s', (title, description, expected) => {
    expect(inferAgentType(title, description)).toBe(expected);
  });

  it('matches whole words, not substrings', () => {
    expect(inferAgentType('Fetch the latest contest results', 'attest the build, protest nothing')).toBe('backend');
    expect(inferAgentType('Build a guild registry', 'quick fruit')).toBe('backend');
    expect(inferAgentType('Testing', '')).toBe('test');
  });

  it('an implementation task that mentions its tests stays an implementation task', () => {
    expect(inferAgentType('Add function', 'Create lib/add.js exporting add(a, b), with a node:test test in test/add.test.js.')).toBe('backend');
    expect(inferAgentType('Counter widget', 'A React component, with unit tests')).toBe('frontend');
    expect(inferAgentType('Tests for the parser', 'cover the parse function')).toBe('test');
  });

  it('defaults to backend when nothing points elsewhere', () => {
    expect(inferAgentType('Do the thing', 'carefully')).toBe('backend');
  });
});
