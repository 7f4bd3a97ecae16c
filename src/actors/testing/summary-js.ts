/**
 * Summaries of node:test (TAP and spec reporters), vitest and jest.
 */
import { type Candidate, FAILURES_MAX, lastIndex, nextText, specFailures, tapFailures, type TestFailure, withNoTests, zeroCounts } from './summary-common.ts';

// ---------------------------------------------------------------- node:test

const NODE_TESTS = /^(#|ℹ) tests (\d+)$/;
const NODE_FIELD = /^(?:#|ℹ) ([a-z_]+) (\d+(?:\.\d+)?)$/;
// `node --test missing.js` prints this, runs nothing and exits 1.
const NODE_NOT_FOUND = /^Could not find '.+'$/;
// Node 20 reports a test file that registered no tests as one passing test named by the file's
// absolute path (TAP `ok 1 - /abs/x.test.mjs`, spec `✔ /abs/x.test.mjs (84ms)`). Such
// placeholders are not tests: counting them would hide "this file has no tests".
const FILE_PATH = String.raw`(?:/|[A-Za-z]:\\)[^\n]*\.[cm]?[jt]sx?`;
const NODE_FILE_PLACEHOLDER = new RegExp(`^(?:ok \\d+ - ${FILE_PATH}|✔ ${FILE_PATH} \\([\\d.]+m?s\\))$`);

export function parseNodeTest(lines: readonly string[]): Candidate | undefined {
  const at = lastIndex(lines, NODE_TESTS);
  const notFound = lastIndex(lines, NODE_NOT_FOUND);
  if (notFound > at) return { line: notFound, runner: 'node', counts: zeroCounts() };
  if (at < 0) return undefined;
  const fields = new Map<string, number>();
  for (let i = at; i < lines.length && i < at + 12; i++) {
    const match = NODE_FIELD.exec(lines[i] ?? '');
    if (match === null) break;
    fields.set(match[1] ?? '', Number(match[2]));
  }
  // Placeholders belong to this run only: look back to the previous summary, not further.
  const previous = lastIndex(lines, NODE_TESTS, at);
  let placeholders = 0;
  for (let i = previous + 1; i < at; i++) {
    if (NODE_FILE_PLACEHOLDER.test(lines[i] ?? '')) placeholders++;
  }
  const get = (name: string) => fields.get(name) ?? 0;
  const counts = withNoTests(
    {
    passed: Math.max(0, get('pass') - placeholders),
    failed: get('fail') + get('cancelled'),
    errors: 0,
    skipped: get('skipped') + get('todo'),
    total: Math.max(0, get('tests') - placeholders),
    },
    (lines[at] ?? '').startsWith('ℹ') ? specFailures(lines, previous + 1, at) : tapFailures(lines, previous + 1, at),
  );
  return { line: at, runner: 'node', counts };
}

// ---------------------------------------------------------------- vitest

// `      Tests  2 failed | 10 passed | 1 skipped (13)` or `      Tests  no tests`; the
// `Test Files` line above it counts files and is deliberately not matched.
const VITEST_TESTS = /^\s*Tests\s+(no tests|\d+ [a-z ]+(?: \| \d+ [a-z ]+)*\s*\(\d+\))$/;
const VITEST_ERRORS = /^\s*Errors\s+(\d+) errors?\b/;
const VITEST_NO_FILES = /No test files found/;

export function parseVitest(lines: readonly string[]): Candidate | undefined {
  const at = lastIndex(lines, VITEST_TESTS);
  const noFiles = lastIndex(lines, VITEST_NO_FILES);
  if (noFiles > at) return { line: noFiles, runner: 'vitest', counts: zeroCounts() };
  if (at < 0) return undefined;
  const line = lines[at] ?? '';
  let errors = 0;
  for (let i = at + 1; i < lines.length && i <= at + 3; i++) {
    const match = VITEST_ERRORS.exec(lines[i] ?? '');
    if (match !== null) errors = Number(match[1]);
  }
  if (/\bno tests$/.test(line)) {
    const failures = vitestFailures(lines, lastIndex(lines, VITEST_TESTS, at) + 1, at);
    return { line: at, runner: 'vitest', counts: { ...zeroCounts(), errors, noTests: errors === 0, failures } };
  }
  const pieces = countPieces(line);
  const totalMatch = /\((\d+)\)$/.exec(line);
  const counts = withNoTests(
    {
      passed: pieces.get('passed') ?? 0,
      failed: pieces.get('failed') ?? 0,
      errors,
      skipped: (pieces.get('skipped') ?? 0) + (pieces.get('todo') ?? 0),
      total: totalMatch === null ? null : Number(totalMatch[1]),
    },
    vitestFailures(lines, lastIndex(lines, VITEST_TESTS, at) + 1, at),
  );
  return { line: at, runner: 'vitest', counts };
}

// ` FAIL  test/a.test.mjs > suite > name`, or a file that failed to load: ` FAIL  test/b.test.mjs [ test/b.test.mjs ]`.
const VITEST_FAIL = /^ ?FAIL {1,2}(\S.*?)(?: \[ .* \])?$/;

/** The tests (and test files that failed to load) vitest's "Failed Tests" recap names, with the error line under each. */
function vitestFailures(lines: readonly string[], from: number, to: number): TestFailure[] {
  const failures: TestFailure[] = [];
  for (let i = Math.max(0, from); i < to && failures.length < FAILURES_MAX; i++) {
    const match = VITEST_FAIL.exec(lines[i] ?? '');
    if (!match) continue;
    const name = match[1] ?? '';
    if (!failures.some((f) => f.name === name)) failures.push({ name, message: nextText(lines, i, to, 2) });
  }
  return failures;
}

/** `2 failed | 10 passed, 1 skipped` → Map { failed: 2, passed: 10, skipped: 1 }. */
export function countPieces(text: string): Map<string, number> {
  const pieces = new Map<string, number>();
  for (const match of text.matchAll(/(\d+) ([a-z]+)/g)) {
    const word = match[2] ?? '';
    pieces.set(word, (pieces.get(word) ?? 0) + Number(match[1]));
  }
  return pieces;
}

// ---------------------------------------------------------------- jest

const JEST_TESTS = /^Tests:\s+(.*?)(\d+) total$/;
const JEST_NO_TESTS = /^No tests found\b/;

// Jest's "Test suite failed to run" is not counted as an error: the message is printed again in
// the end-of-run recap of failures, so counting occurrences would double-count.
export function parseJest(lines: readonly string[]): Candidate | undefined {
  const at = lastIndex(lines, JEST_TESTS);
  const noTests = lastIndex(lines, JEST_NO_TESTS);
  if (noTests > at) return { line: noTests, runner: 'jest', counts: zeroCounts() };
  if (at < 0) return undefined;
  const match = JEST_TESTS.exec(lines[at] ?? '');
  const pieces = countPieces(match?.[1] ?? '');
  const counts = withNoTests(
    {
      passed: pieces.get('passed') ?? 0,
      failed: pieces.get('failed') ?? 0,
      errors: 0,
      skipped: (pieces.get('skipped') ?? 0) + (pieces.get('todo') ?? 0) + (pieces.get('pending') ?? 0),
      total: Number(match?.[2] ?? 0),
    },
    jestFailures(lines, lastIndex(lines, JEST_TESTS, at) + 1, at),
  );
  return { line: at, runner: 'jest', counts };
}

const JEST_FILE = /^(?:FAIL|PASS) (\S+)/;
const JEST_BULLET = /^ {2}● (.+)$/;

/**
 * `● suite › name` blocks under `FAIL file`, with the first line of the message (" › " becomes
 * " > "). A file that could not run (`● Test suite failed to run`) is named by its path.
 * Console-output blocks (`● Console`) are not failures; a repeated block is named once.
 */
function jestFailures(lines: readonly string[], from: number, to: number): TestFailure[] {
  const failures: TestFailure[] = [];
  let file = '';
  for (let i = Math.max(0, from); i < to && failures.length < FAILURES_MAX; i++) {
    const line = lines[i] ?? '';
    const header = JEST_FILE.exec(line);
    if (header) {
      file = header[1] ?? '';
      continue;
    }
    const bullet = JEST_BULLET.exec(line);
    if (!bullet || bullet[1] === 'Console') continue;
    const title = bullet[1] ?? '';
    const name = title === 'Test suite failed to run' && file !== '' ? file : title.split(' › ').join(' > ');
    if (!failures.some((f) => f.name === name)) failures.push({ name, message: nextText(lines, i, to) });
  }
  return failures;
}
