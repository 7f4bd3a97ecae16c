/**
 * Reads the summary a test runner printed at the end of its output: node:test (TAP and spec
 * reporters), vitest, jest and pytest. The counts are informational — whether a run passed is
 * decided by the exit code in `run-tests.ts`, never here.
 */

/** One test the runner reported as failing, as a person would quote it. */
export interface TestFailure {
  /** The test's name as the runner printed it (suite path joined with " > " where the runner nests). */
  name: string;
  /** The first line of its assertion or error message, when the runner printed one. */
  message: string | null;
}

/**
 * What a runner said it ran. When no summary was recognised every count is null (never 0: "we do
 * not know" is not "nothing ran"); `total` is the runner's own total when it printed one.
 */
export interface TestCounts {
  passed: number | null;
  failed: number | null;
  errors: number | null;
  skipped: number | null;
  total: number | null;
  /** The runner said it found no tests (or its summary adds up to zero). */
  noTests: boolean;
  /** The failing tests the output names, in the order printed (at most 50); empty when none are named. */
  failures: TestFailure[];
}

type Runner = 'node' | 'vitest' | 'jest' | 'pytest';

/** A summary found at `line`; the latest one in the output wins. */
interface Candidate {
  line: number;
  runner: Runner;
  counts: TestCounts;
}

const ESC = String.fromCharCode(0x1b);
const BEL = String.fromCharCode(0x07);
// CSI sequences (colours, cursor moves) and OSC sequences (hyperlinks, titles). Built from strings
// so the control characters need no literal escapes inside a regex.
const ANSI = new RegExp(`${ESC}\\[[0-9;?]*[ -/]*[@-~]|${ESC}\\][^${BEL}${ESC}]*(?:${BEL}|${ESC}\\\\)|${ESC}[@-_]`, 'g');

/** Removes ANSI escape sequences, so coloured runner output parses like plain output. */
export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/**
 * Parses the last test summary in `output`. Unknown output yields null counts (never zeros).
 * `exitCode` matters only for pytest, whose exit code 5 means "no tests collected".
 */
export function parseTestSummary(output: string, exitCode: number | null): TestCounts {
  const lines = stripAnsi(output)
    .split('\n')
    .map((line) => line.replace(/\s+$/, ''));
  const candidates = [parseNodeTest(lines), parseVitest(lines), parseJest(lines), parsePytest(lines)];
  let best: Candidate | undefined;
  for (const found of candidates) {
    if (found !== undefined && (best === undefined || found.line > best.line)) best = found;
  }
  const counts = best?.counts ?? { passed: null, failed: null, errors: null, skipped: null, total: null, noTests: false, failures: [] };
  const pytestRan = best?.runner === 'pytest' || lines.some((line) => PYTEST_HEADER.test(line));
  if (exitCode === 5 && pytestRan) return { ...counts, total: counts.total ?? 0, noTests: true };
  return counts;
}

function zeroCounts(): TestCounts {
  return { passed: 0, failed: 0, errors: 0, skipped: 0, total: 0, noTests: true, failures: [] };
}

/** Index of the last line matching `re`, or -1. */
function lastIndex(lines: readonly string[], re: RegExp, before = lines.length): number {
  for (let i = Math.min(before, lines.length) - 1; i >= 0; i--) {
    if (re.test(lines[i] ?? '')) return i;
  }
  return -1;
}

function withNoTests(counts: Omit<TestCounts, 'noTests' | 'failures'>, failures: TestFailure[] = []): TestCounts {
  const noTests = counts.total === 0 && counts.failed === 0 && counts.errors === 0;
  return { ...counts, noTests, failures };
}

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

function parseNodeTest(lines: readonly string[]): Candidate | undefined {
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
    tapFailures(lines, previous + 1, at),
  );
  return { line: at, runner: 'node', counts };
}

const TAP_NOT_OK = /^(\s*)not ok \d+(?: -)? (.*?)(?: # (?:SKIP|TODO)\b.*)?$/i;
const TAP_SUBTEST = /^(\s*)# Subtest: (.*)$/;
const TAP_ERROR = /^\s*error: (.*)$/;
const FAILURES_MAX = 50;

/**
 * Failing tests of a TAP stream (node:test's default reporter when its output is not a terminal):
 * `not ok N - name`, nested under `# Subtest:` lines by indentation (joined with " > "), with the
 * first line of the YAML block's `error`. A suite that failed only because a test inside it failed
 * (`failureType: 'subtestsFailed'`) is not a failing test of its own.
 */
function tapFailures(lines: readonly string[], from: number, to: number): TestFailure[] {
  const failures: TestFailure[] = [];
  const path: { indent: number; name: string }[] = [];
  for (let i = Math.max(0, from); i < to && failures.length < FAILURES_MAX; i++) {
    const line = lines[i] ?? '';
    const sub = TAP_SUBTEST.exec(line);
    if (sub) {
      const indent = sub[1]?.length ?? 0;
      while (path.length > 0 && path[path.length - 1]!.indent >= indent) path.pop();
      path.push({ indent, name: sub[2] ?? '' });
      continue;
    }
    const bad = TAP_NOT_OK.exec(line);
    if (!bad || /# (?:SKIP|TODO)\b/i.test(line)) continue;
    const indent = bad[1]?.length ?? 0;
    const own = bad[2] ?? '';
    let message: string | null = null;
    let container = false;
    for (let j = i + 1; j < to && j < i + 40; j++) {
      const next = lines[j] ?? '';
      if (TAP_NOT_OK.test(next) || TAP_SUBTEST.test(next) || /^\s*ok \d+/.test(next)) break;
      if (/failureType: '?subtestsFailed'?/.test(next)) container = true;
      const err = TAP_ERROR.exec(next);
      if (err && message === null) {
        const inline = (err[1] ?? '').trim();
        if (inline !== '|-' && inline !== '|' && inline !== '>-') message = inline.replace(/^'(.*)'$/, '$1') || null;
        else for (let k = j + 1; k < to && k < j + 20; k++) {
          const text = (lines[k] ?? '').trim();
          if (text !== '') {
            message = text;
            break;
          }
        }
      }
    }
    const parents = path.filter((p) => p.indent < indent).map((p) => p.name);
    if (!container) failures.push({ name: [...parents, own].join(' > '), message });
  }
  return failures;
}

// ---------------------------------------------------------------- vitest

// `      Tests  2 failed | 10 passed | 1 skipped (13)` or `      Tests  no tests`; the
// `Test Files` line above it counts files and is deliberately not matched.
const VITEST_TESTS = /^\s*Tests\s+(no tests|\d+ [a-z ]+(?: \| \d+ [a-z ]+)*\s*\(\d+\))$/;
const VITEST_ERRORS = /^\s*Errors\s+(\d+) errors?\b/;
const VITEST_NO_FILES = /No test files found/;

function parseVitest(lines: readonly string[]): Candidate | undefined {
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
    return { line: at, runner: 'vitest', counts: { ...zeroCounts(), errors, noTests: errors === 0 } };
  }
  const pieces = countPieces(line);
  const totalMatch = /\((\d+)\)$/.exec(line);
  const counts = withNoTests({
    passed: pieces.get('passed') ?? 0,
    failed: pieces.get('failed') ?? 0,
    errors,
    skipped: (pieces.get('skipped') ?? 0) + (pieces.get('todo') ?? 0),
    total: totalMatch === null ? null : Number(totalMatch[1]),
  });
  return { line: at, runner: 'vitest', counts };
}

/** `2 failed | 10 passed, 1 skipped` → Map { failed: 2, passed: 10, skipped: 1 }. */
function countPieces(text: string): Map<string, number> {
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
function parseJest(lines: readonly string[]): Candidate | undefined {
  const at = lastIndex(lines, JEST_TESTS);
  const noTests = lastIndex(lines, JEST_NO_TESTS);
  if (noTests > at) return { line: noTests, runner: 'jest', counts: zeroCounts() };
  if (at < 0) return undefined;
  const match = JEST_TESTS.exec(lines[at] ?? '');
  const pieces = countPieces(match?.[1] ?? '');
  const counts = withNoTests({
    passed: pieces.get('passed') ?? 0,
    failed: pieces.get('failed') ?? 0,
    errors: 0,
    skipped: (pieces.get('skipped') ?? 0) + (pieces.get('todo') ?? 0) + (pieces.get('pending') ?? 0),
    total: Number(match?.[2] ?? 0),
  });
  return { line: at, runner: 'jest', counts };
}

// ---------------------------------------------------------------- pytest

const PYTEST_HEADER = /^=+ test session starts =+$/;
// `==== 2 failed, 10 passed in 0.12s ====`, the `-q` form without the rules, and `no tests ran`.
const PYTEST_SUMMARY = /^(?:=+ )?(no tests ran|\d+ [a-z]+(?:, \d+ [a-z]+)*) in \d+(?:\.\d+)?s(?: \([^)]*\))?(?: =+)?$/;
const PYTEST_WORDS = new Set([
  'passed', 'failed', 'skipped', 'error', 'errors', 'xfailed', 'xpassed', 'deselected', 'warning', 'warnings', 'rerun',
]);

function parsePytest(lines: readonly string[]): Candidate | undefined {
  for (let at = lines.length - 1; at >= 0; at--) {
    const match = PYTEST_SUMMARY.exec(lines[at] ?? '');
    const body = match?.[1];
    if (body === undefined) continue;
    if (body === 'no tests ran') return { line: at, runner: 'pytest', counts: zeroCounts() };
    const pieces = countPieces(body);
    // "3 files in 0.2s" from some other tool is not a pytest summary.
    if (![...pieces.keys()].every((word) => PYTEST_WORDS.has(word))) continue;
    const get = (name: string) => pieces.get(name) ?? 0;
    const passed = get('passed') + get('xpassed');
    const failed = get('failed');
    const skipped = get('skipped') + get('xfailed');
    const counts = withNoTests({
      passed,
      failed,
      errors: get('error') + get('errors'),
      skipped,
      total: passed + failed + skipped,
    });
    return { line: at, runner: 'pytest', counts };
  }
  return undefined;
}
