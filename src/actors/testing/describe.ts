/**
 * Test runs in words a person (and the model) can read: why a run failed in one sentence, with the
 * first failing test's name and the first line of its assertion, and whether a failure is only
 * what already failed before any change (the baseline).
 */
import type { Baseline } from '../../machines/types.ts';
import type { TestRunResult } from './run-tests.ts';

type Described = Pick<TestRunResult, 'status' | 'summary' | 'failures' | 'failed' | 'passed' | 'exitCode'>;

const quote = (text: string, max = 200) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** "tests failed: 1 failed, 3 passed; first failing test "sum > adds": expected 3 to be 4". */
export function describeTestRun(result: Described): string {
  switch (result.status) {
    case 'passed':
      return `tests passed: ${result.summary}`;
    case 'no_tests':
      return 'the test command found no tests';
    case 'timeout':
      return `tests ${result.summary}`;
    case 'error':
      return `the test command could not run: ${result.summary}`;
    case 'failed':
      break;
  }
  const counts = result.passed === null ? `${result.summary}; the runner's output was not understood, so no counts` : result.summary;
  const first = result.failures[0];
  if (first === undefined) return `tests failed: ${counts}`;
  const more = result.failures.length > 1 ? ` (and ${result.failures.length - 1} more)` : '';
  const message = first.message === null ? '' : `: ${quote(first.message)}`;
  return `tests failed: ${counts}; first failing test "${quote(first.name, 120)}"${message}${more}`;
}

/**
 * The failing tests of `result` when every one of them already failed in the baseline (and the
 * runner said how many failed, so none can hide behind the names it printed); otherwise [].
 */
export function preexistingFailures(result: Pick<TestRunResult, 'status' | 'failed' | 'errors' | 'failures'>, baseline: Baseline | null | undefined): string[] {
  if (result.status !== 'failed' || !baseline || baseline.failing.length === 0) return [];
  if (result.failed === null || result.failed === 0 || result.failed > result.failures.length || (result.errors ?? 0) > 0) return [];
  const before = new Set(baseline.failing);
  const names = result.failures.map((f) => f.name);
  return names.every((name) => before.has(name)) ? names : [];
}
