/**
 * Reads the summary a test runner printed at the end of its output:
 *  - node:test (TAP and spec reporters),
 *  - vitest, jest, pytest,
 *  - mocha (spec reporter and `--reporter tap`), ava (default reporter and `--tap`),
 *  - tap (node-tap v21: its TAP output and the `# { total: … }` summary), uvu,
 *  - go test (plain and `-v`), cargo test (every "test result:" line of the run summed).
 * Each also names the failing tests it printed. The counts are informational — whether a run
 * passed is decided by the exit code in `run-tests.ts`, never here.
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

type Runner = 'node' | 'vitest' | 'jest' | 'pytest' | 'mocha' | 'ava' | 'tap' | 'uvu' | 'go' | 'cargo';

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
  // On a tie (two parsers claiming the same line) the earlier one in this list wins.
  const candidates = [
    parseNodeTest(lines), parseMochaTap(lines), parseAvaTap(lines), parseVitest(lines), parseJest(lines), parsePytest(lines),
    parseMocha(lines), parseAva(lines), parseTap(lines), parseUvu(lines), parseGo(lines), parseCargo(lines),
  ];
  let best: Candidate | undefined;
  for (const found of candidates) {
    if (found !== undefined && (best === undefined || found.line > best.line)) best = found;
  }
  const counts = best?.counts ?? nullCounts();
  const pytestRan = best?.runner === 'pytest' || lines.some((line) => PYTEST_HEADER.test(line));
  if (exitCode === 5 && pytestRan) return { ...counts, total: counts.total ?? 0, noTests: true };
  return counts;
}

function nullCounts(): TestCounts {
  return { passed: null, failed: null, errors: null, skipped: null, total: null, noTests: false, failures: [] };
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
    (lines[at] ?? '').startsWith('ℹ') ? specFailures(lines, previous + 1, at) : tapFailures(lines, previous + 1, at),
  );
  return { line: at, runner: 'node', counts };
}

const TAP_NOT_OK = /^(\s*)not ok \d+(?: -)? (.*)$/i;
const TAP_POINT = /^\s*(?:not )?ok \d+\b/;
const TAP_SUBTEST = /^(\s*)# Subtest: (.*)$/;
const TAP_ERROR = /^\s*error: (.*)$/;
// ava's TAP reporter puts the assertion message in `message:`; node:test's has `error:`.
const TAP_MESSAGE = /^\s*message: (.*)$/;
const TAP_DIRECTIVE = /(?<!\\) # (?:SKIP|TODO)\b/i;
const FAILURES_MAX = 50;

interface TapOptions {
  /** Turns a test point's own name into the name to report (ava: " › " → " > "). */
  rename?: (name: string) => string;
}

/**
 * Failing tests of a TAP stream (node:test's TAP reporter, node-tap, mocha's and ava's TAP):
 * `not ok N - name`, nested under `# Subtest:` lines by indentation (joined with " > "), with the
 * first line of the YAML block's `error` (or `message`), or — mocha, no YAML — the first indented
 * line under it. A test that failed only because a test inside it failed is not a failing test of
 * its own: node:test marks it `failureType: 'subtestsFailed'`, node-tap just closes the subtest
 * with `not ok` after a failing child.
 */
function tapFailures(lines: readonly string[], from: number, to: number, options: TapOptions = {}): TestFailure[] {
  const failures: TestFailure[] = [];
  const path: { indent: number; name: string; failedInside: boolean }[] = [];
  for (let i = Math.max(0, from); i < to && failures.length < FAILURES_MAX; i++) {
    const line = lines[i] ?? '';
    const sub = TAP_SUBTEST.exec(line);
    if (sub) {
      const indent = sub[1]?.length ?? 0;
      while (path.length > 0 && path[path.length - 1]!.indent >= indent) path.pop();
      path.push({ indent, name: sub[2] ?? '', failedInside: false });
      continue;
    }
    const bad = TAP_NOT_OK.exec(line);
    if (!bad || TAP_DIRECTIVE.test(line)) continue;
    const indent = bad[1]?.length ?? 0;
    // Everything after an unescaped " # " is a directive or comment (`# time=12ms`), not the name.
    const own = (bad[2] ?? '').replace(/(?<!\\) # .*$/, '').trim();
    const closing = path.find((p) => p.indent === indent && p.name === own);
    let container = closing?.failedInside === true;
    const { message, subtestsFailed } = tapDetails(lines, i, to, indent);
    if (subtestsFailed) container = true;
    if (container) continue;
    const parents = path.filter((p) => p.indent < indent);
    for (const p of parents) p.failedInside = true;
    const name = [...parents.map((p) => p.name), own].join(' > ');
    failures.push({ name: options.rename ? options.rename(name) : name, message });
  }
  return failures;
}

/** The message of the test point at `at` (YAML `error:`/`message:`, or mocha's indented text). */
function tapDetails(lines: readonly string[], at: number, to: number, indent: number): { message: string | null; subtestsFailed: boolean } {
  let message: string | null = null;
  let subtestsFailed = false;
  const first = lines[at + 1] ?? '';
  if (at + 1 < to && !/^\s*---$/.test(first) && leadingSpaces(first) > indent && first.trim() !== '' && !TAP_POINT.test(first)) {
    return { message: first.trim(), subtestsFailed };
  }
  let fallback: string | null = null;
  for (let j = at + 1; j < to && j < at + 60; j++) {
    const next = lines[j] ?? '';
    if (TAP_POINT.test(next) || TAP_SUBTEST.test(next) || /^\s*\.\.\.$/.test(next)) break;
    if (/failureType: '?subtestsFailed'?/.test(next)) subtestsFailed = true;
    const err = TAP_ERROR.exec(next);
    if (err && message === null) message = yamlFirstLine(lines, j, to, err[1] ?? '');
    const msg = TAP_MESSAGE.exec(next);
    if (msg && fallback === null && leadingSpaces(next) <= indent + 4) fallback = yamlFirstLine(lines, j, to, msg[1] ?? '');
  }
  return { message: message ?? fallback, subtestsFailed };
}

/** A YAML scalar's first line: inline (quotes removed) or the first line of a block scalar. */
function yamlFirstLine(lines: readonly string[], at: number, to: number, inline: string): string | null {
  const text = inline.trim();
  if (!/^[|>][-+0-9]*$/.test(text)) return unquote(text) || null;
  for (let k = at + 1; k < to && k < at + 20; k++) {
    const next = (lines[k] ?? '').trim();
    if (next !== '') return next;
  }
  return null;
}

function unquote(text: string): string {
  const quoted = /^'(.*)'$/.exec(text) ?? /^"(.*)"$/.exec(text);
  return quoted ? (quoted[1] ?? '') : text;
}

function leadingSpaces(line: string): number {
  return /^\s*/.exec(line)?.[0].length ?? 0;
}

/** The first non-empty line after `at` (within `to`), trimmed; null when there is none. */
function nextText(lines: readonly string[], at: number, to = lines.length, within = 6): string | null {
  for (let j = at + 1; j < to && j <= at + within; j++) {
    const text = (lines[j] ?? '').trim();
    if (text !== '') return text;
  }
  return null;
}

const SPEC_SUITE = /^(\s*)▶ (.*)$/;
const SPEC_RESULT = /^(\s*)([✔✖﹣]) (.*?)(?: \([\d.]+m?s\))?(?: # (?:SKIP|TODO)\b.*)?$/;

/**
 * Failing tests of node:test's spec reporter: `✖ name (1.2ms)` with the error on the next line,
 * nested under `▶ suite` headers by indentation. A suite's own closing `✖ suite` is not a test.
 */
function specFailures(lines: readonly string[], from: number, to: number): TestFailure[] {
  const failures: TestFailure[] = [];
  const suites: { indent: number; name: string }[] = [];
  for (let i = Math.max(0, from); i < to && failures.length < FAILURES_MAX; i++) {
    const line = lines[i] ?? '';
    const suite = SPEC_SUITE.exec(line);
    if (suite) {
      const indent = suite[1]?.length ?? 0;
      while (suites.length > 0 && suites[suites.length - 1]!.indent >= indent) suites.pop();
      suites.push({ indent, name: suite[2] ?? '' });
      continue;
    }
    const result = SPEC_RESULT.exec(line);
    if (!result) continue;
    const indent = result[1]?.length ?? 0;
    const name = result[3] ?? '';
    const top = suites[suites.length - 1];
    if (top !== undefined && top.indent === indent && top.name === name) {
      suites.pop();
      continue;
    }
    if (result[2] !== '✖' || /# (?:SKIP|TODO)\b/.test(line)) continue;
    const next = lines[i + 1] ?? '';
    const message = leadingSpaces(next) > indent && next.trim() !== '' ? unquote(next.trim()) : null;
    const parents = suites.filter((s) => s.indent < indent).map((s) => s.name);
    failures.push({ name: [...parents, name].join(' > '), message });
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

// ---------------------------------------------------------------- pytest

const PYTEST_HEADER = /^=+ test session starts =+$/;
// `==== 2 failed, 10 passed in 0.12s ====`, the `-q` form without the rules, and `no tests ran`.
const PYTEST_SUMMARY = /^(?:=+ )?(no tests ran|\d+ [a-z]+(?:, \d+ [a-z]+)*) in \d+(?:\.\d+)?s(?: \([^)]*\))?(?: =+)?$/;
const PYTEST_WORDS = new Set([
  'passed', 'failed', 'skipped', 'error', 'errors', 'xfailed', 'xpassed', 'deselected', 'warning', 'warnings', 'rerun',
]);

const PYTEST_SHORT_SUMMARY = /^=+ short test summary info =+$/;
const PYTEST_FAILED = /^(?:FAILED|ERROR) (.+?)(?: - (.*))?$/;

/** The `FAILED node::id - message` and `ERROR node::id - message` lines of the short test summary before `at`. */
function pytestFailures(lines: readonly string[], at: number): TestFailure[] {
  const start = lastIndex(lines, PYTEST_SHORT_SUMMARY, at);
  const failures: TestFailure[] = [];
  if (start < 0) return failures;
  for (let i = start + 1; i < at && failures.length < FAILURES_MAX; i++) {
    const match = PYTEST_FAILED.exec(lines[i] ?? '');
    if (match) failures.push({ name: match[1] ?? '', message: match[2]?.trim() || null });
  }
  return failures;
}

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
    const counts = withNoTests(
      {
        passed,
        failed,
        errors: get('error') + get('errors'),
        skipped,
        total: passed + failed + skipped,
      },
      pytestFailures(lines, at),
    );
    return { line: at, runner: 'pytest', counts };
  }
  return undefined;
}

// ---------------------------------------------------------------- mocha (spec reporter)

// `  3 passing (15ms)`, then `  1 pending` and `  3 failing` when there are any.
const MOCHA_PASSING = /^\s*(\d+) passing \(\d+(?:\.\d+)?(?:ms|s|m|h)\)$/;
const MOCHA_OTHER = /^\s*(\d+) (pending|failing)$/;
const MOCHA_RECAP = /^ {2}(\d+)\) (.*)$/;

function parseMocha(lines: readonly string[]): Candidate | undefined {
  const at = lastIndex(lines, MOCHA_PASSING);
  if (at < 0) return undefined;
  const passed = Number(MOCHA_PASSING.exec(lines[at] ?? '')?.[1] ?? 0);
  let pending = 0;
  let failing = 0;
  let end = at;
  for (let i = at + 1; i < lines.length && i <= at + 2; i++) {
    const match = MOCHA_OTHER.exec(lines[i] ?? '');
    if (!match) break;
    if (match[2] === 'pending') pending = Number(match[1]);
    else failing = Number(match[1]);
    end = i;
  }
  const counts = withNoTests(
    { passed, failed: failing, errors: 0, skipped: pending, total: passed + failing + pending },
    failing > 0 ? mochaFailures(lines, end + 1) : [],
  );
  return { line: at, runner: 'mocha', counts };
}

/**
 * The numbered recap after "N failing": `  3) math` / `       nested` / `         deep fails:` (the
 * title runs over lines until one ends with ":"), then the error's first line.
 */
function mochaFailures(lines: readonly string[], from: number): TestFailure[] {
  const failures: TestFailure[] = [];
  for (let i = from; i < lines.length && failures.length < FAILURES_MAX; i++) {
    const match = MOCHA_RECAP.exec(lines[i] ?? '');
    if (!match) continue;
    const parts = [(match[2] ?? '').trim()];
    let j = i;
    while (!parts[parts.length - 1]!.endsWith(':') && j + 1 < lines.length && j < i + 20) {
      j++;
      const next = (lines[j] ?? '').trim();
      if (next === '') break;
      parts.push(next);
    }
    const last = parts.length - 1;
    parts[last] = parts[last]!.replace(/:$/, '');
    failures.push({ name: parts.join(' > '), message: nextText(lines, j) });
    i = j;
  }
  return failures;
}

// ---------------------------------------------------------------- mocha --reporter tap

/**
 * Mocha's TAP: `# tests N` / `# pass N` / `# fail N` and then the plan `1..N` (node:test prints its
 * plan before the summary). Mocha's `# tests` leaves pending tests out; the plan counts them.
 */
function parseMochaTap(lines: readonly string[]): Candidate | undefined {
  for (let at = lines.length - 1; at >= 3; at--) {
    const plan = /^1\.\.(\d+)$/.exec(lines[at] ?? '');
    if (!plan) continue;
    const pass = /^# pass (\d+)$/.exec(lines[at - 2] ?? '');
    const fail = /^# fail (\d+)$/.exec(lines[at - 1] ?? '');
    if (!pass || !fail || !/^# tests \d+$/.test(lines[at - 3] ?? '')) return undefined;
    const from = lastIndex(lines, /^1\.\.\d+$/, at) + 1;
    let skipped = 0;
    for (let i = from; i < at; i++) if (/^ok \d+ .*(?<!\\) # SKIP\b/i.test(lines[i] ?? '')) skipped++;
    const counts = withNoTests(
      { passed: Number(pass[1]), failed: Number(fail[1]), errors: 0, skipped, total: Number(plan[1]) },
      tapFailures(lines, from, at),
    );
    return { line: at, runner: 'mocha', counts };
  }
  return undefined;
}

// ---------------------------------------------------------------- ava

// The summary under ava's closing `─` rule: `2 tests passed`, `3 tests failed`, `1 test skipped`,
// `1 test todo`, `1 known failure`, `1 uncaught exception`, `1 unhandled rejection`.
const AVA_SUMMARY =
  /^ {2}(\d+) (tests? passed|tests? failed|tests? skipped|tests? todo|known failures?|uncaught exceptions?|unhandled rejections?)$/;
const AVA_NO_TESTS = /^ {2}✘ (?:No tests found in .+|Couldn.t find any files to test)$/;
const AVA_FAIL = /^ {2}✘ \[fail\]: (.+)$/;
const AVA_UNCAUGHT = /^ {2}(?:Uncaught exception|Unhandled rejection) in (.+)$/;
const avaName = (name: string) => name.split(' › ').join(' > ');

function parseAva(lines: readonly string[]): Candidate | undefined {
  const at = lastIndex(lines, AVA_SUMMARY);
  const none = lastIndex(lines, AVA_NO_TESTS);
  if (none > at) return { line: none, runner: 'ava', counts: zeroCounts() };
  if (at < 0) return undefined;
  let start = at;
  while (start > 0 && AVA_SUMMARY.test(lines[start - 1] ?? '')) start--;
  const got = new Map<string, number>();
  for (let i = start; i <= at; i++) {
    const match = AVA_SUMMARY.exec(lines[i] ?? '');
    const word = (match?.[2] ?? '').replace(/^tests? /, '').replace(/s$/, '');
    got.set(word, (got.get(word) ?? 0) + Number(match?.[1] ?? 0));
  }
  const from = Math.max(lastIndex(lines, AVA_SUMMARY, start), lastIndex(lines, AVA_NO_TESTS, start)) + 1;
  // With failures ava leaves the "passed" line out; the ✔ lines above are the passing tests.
  let passed = got.get('passed');
  if (passed === undefined) {
    passed = 0;
    for (let i = from; i < start; i++) if (/^ {2}✔ (?!\[expected fail\])/.test(lines[i] ?? '')) passed++;
  }
  const failed = got.get('failed') ?? 0;
  const skipped = (got.get('skipped') ?? 0) + (got.get('todo') ?? 0);
  const counts = withNoTests(
    { passed, failed, errors: (got.get('uncaught exception') ?? 0) + (got.get('unhandled rejection') ?? 0), skipped, total: passed + failed + skipped },
    avaFailures(lines, from, start),
  );
  return { line: at, runner: 'ava', counts };
}

/**
 * `✘ [fail]: file › name message`: ava prints the message after the title on the same line, so the
 * title is the longest prefix that reappears alone as a heading of the detail section below.
 * A file that crashed (`Uncaught exception in test/x.js`) is named by its path.
 */
function avaFailures(lines: readonly string[], from: number, to: number): TestFailure[] {
  const failures: TestFailure[] = [];
  const headings = new Set<string>();
  for (let i = from; i < to; i++) {
    const line = lines[i] ?? '';
    if (/^ {2}\S/.test(line)) headings.add(line.trim());
  }
  for (let i = from; i < to && failures.length < FAILURES_MAX; i++) {
    const line = lines[i] ?? '';
    const crash = AVA_UNCAUGHT.exec(line);
    if (crash) {
      failures.push({ name: crash[1] ?? '', message: nextText(lines, i, to) });
      continue;
    }
    const fail = AVA_FAIL.exec(line);
    if (!fail) continue;
    const text = fail[1] ?? '';
    const words = text.split(' ');
    let name = text;
    let message: string | null = null;
    for (let n = words.length - 1; n > 0; n--) {
      const prefix = words.slice(0, n).join(' ');
      if (headings.has(prefix) && !headings.has(text)) {
        name = prefix;
        message = words.slice(n).join(' ');
        break;
      }
    }
    failures.push({ name: avaName(name), message });
  }
  return failures;
}

// ---------------------------------------------------------------- ava --tap

/**
 * Ava's TAP: the plan `1..N`, then `# tests` / `# pass` / `# skip` / `# fail`. Its `# fail` counts
 * todo tests (`not ok N - x # TODO`) too; they are skipped here, as everywhere.
 */
function parseAvaTap(lines: readonly string[]): Candidate | undefined {
  const at = lastIndex(lines, /^# tests \d+$/);
  if (at < 0) return undefined;
  let plan = at - 1;
  while (plan >= 0 && (lines[plan] ?? '') === '') plan--;
  const total = /^1\.\.(\d+)$/.exec(lines[plan] ?? '');
  if (!total) return undefined;
  const fields = new Map<string, number>();
  let end = at;
  for (let i = at; i < lines.length && i < at + 6; i++) {
    const match = /^# (tests|pass|skip|todo|fail) (\d+)$/.exec(lines[i] ?? '');
    if (!match) break;
    fields.set(match[1] ?? '', Number(match[2]));
    end = i;
  }
  // node:test's block goes on with `# suites`, `# cancelled`, `# skipped`, `# duration_ms`.
  if (!fields.has('pass') || !fields.has('fail') || /^# [a-z_]+ \d/.test(lines[end + 1] ?? '')) return undefined;
  const from = lastIndex(lines, /^TAP version \d+$/, plan) + 1;
  let todo = 0;
  let ava = fields.has('skip');
  for (let i = from; i < plan; i++) {
    const line = lines[i] ?? '';
    if (/^not ok \d+ .*(?<!\\) # TODO\b/i.test(line)) todo++;
    if (/^(?:not )?ok \d+ - .* › /.test(line)) ava = true;
  }
  if (!ava && todo === 0) return undefined;
  const get = (name: string) => fields.get(name) ?? 0;
  const counts = withNoTests(
    {
      passed: get('pass'),
      failed: Math.max(0, get('fail') - todo),
      errors: 0,
      skipped: get('skip') + get('todo') + todo,
      total: Number(total[1]),
    },
    tapFailures(lines, from, plan, { rename: avaName }),
  );
  return { line: end, runner: 'ava', counts };
}

// ---------------------------------------------------------------- tap (node-tap)

// node-tap v21 ends its TAP with `# { total: 8, pass: 3, fail: 3, todo: 1, skip: 1 }`.
const TAP_SUMMARY = /^# \{ total: \d+(?:, [a-z]+: \d+)* \}$/;

function parseTap(lines: readonly string[]): Candidate | undefined {
  const at = lastIndex(lines, TAP_SUMMARY);
  if (at < 0) return undefined;
  const fields = new Map<string, number>();
  for (const match of (lines[at] ?? '').matchAll(/([a-z]+): (\d+)/g)) fields.set(match[1] ?? '', Number(match[2]));
  const get = (name: string) => fields.get(name) ?? 0;
  const from = Math.max(lastIndex(lines, TAP_SUMMARY, at), lastIndex(lines, /^TAP version \d+$/, at)) + 1;
  const counts = withNoTests(
    { passed: get('pass'), failed: get('fail'), errors: 0, skipped: get('skip') + get('todo'), total: get('total') },
    tapFailures(lines, from, at),
  );
  return { line: at, runner: 'tap', counts };
}

// ---------------------------------------------------------------- uvu

// `  Total:     6` / `  Passed:    3` / `  Skipped:   1` / `  Duration:  7.45ms`. uvu's Total
// counts the tests that ran (skipped ones are not in it); failed is Total − Passed.
const UVU_TOTAL = /^ {2}Total:\s+(\d+)$/;
const UVU_FAIL = /^\s*FAIL\s+(?:(\S.*?)\s+)?"(.*)"$/;

function parseUvu(lines: readonly string[]): Candidate | undefined {
  const at = lastIndex(lines, UVU_TOTAL);
  if (at < 0) return undefined;
  const passed = /^ {2}Passed:\s+(\d+)$/.exec(lines[at + 1] ?? '');
  const skipped = /^ {2}Skipped:\s+(\d+)$/.exec(lines[at + 2] ?? '');
  if (!passed || !skipped) return undefined;
  const total = Number(UVU_TOTAL.exec(lines[at] ?? '')?.[1] ?? 0);
  const from = lastIndex(lines, UVU_TOTAL, at) + 1;
  const failures: TestFailure[] = [];
  for (let i = from; i < at && failures.length < FAILURES_MAX; i++) {
    const match = UVU_FAIL.exec(lines[i] ?? '');
    if (!match) continue;
    const name = match[1] ? `${match[1]} > ${match[2] ?? ''}` : (match[2] ?? '');
    // The assertion's first line ends with the operator in parentheses: "…equal:  (is)".
    failures.push({ name, message: nextText(lines, i, at)?.replace(/\s{2}\([A-Za-z]+\)$/, '') ?? null });
  }
  const counts = withNoTests(
    { passed: Number(passed[1]), failed: Math.max(0, total - Number(passed[1])), errors: 0, skipped: Number(skipped[1]), total },
    failures,
  );
  return { line: at, runner: 'uvu', counts };
}

// ---------------------------------------------------------------- go test

// One line per package: `ok  \tpkg\t0.01s`, `FAIL\tpkg\t0.01s`, `FAIL\tpkg [build failed]`,
// `?   \tpkg\t[no test files]`.
const GO_PACKAGE = /^(ok|FAIL|\?)\s*\t(\S+)(?:\s+(.*))?$/;
const GO_RESULT = /^(\s*)--- (PASS|FAIL|SKIP): (\S+) \(\d+(?:\.\d+)?s\)$/;

/**
 * go test prints no totals. With `-v` every test has a `--- PASS/FAIL/SKIP` line and those are
 * counted; without it only failures are printed, so passed/skipped/total stay unknown (null). A
 * test with subtests is counted through its subtests. A package that failed to build counts as an
 * error; when nothing but build failures is printed, the counts are unknown.
 */
function parseGo(lines: readonly string[]): Candidate | undefined {
  const at = lastIndex(lines, GO_PACKAGE);
  if (at < 0) return undefined;
  const verbose = lines.some((line) => line.startsWith('=== RUN '));
  const results: { index: number; indent: number; status: string; name: string; pkg: number }[] = [];
  let pkg = 0;
  let ran = 0;
  let broken = 0;
  let failedWithoutTest = 0;
  let noTestFiles = 0;
  for (let i = 0; i <= at; i++) {
    const line = lines[i] ?? '';
    const result = GO_RESULT.exec(line);
    if (result) {
      results.push({ index: i, indent: result[1]?.length ?? 0, status: result[2] ?? '', name: result[3] ?? '', pkg });
      continue;
    }
    const pack = GO_PACKAGE.exec(line);
    if (!pack) continue;
    const note = pack[3] ?? '';
    if (/\[(?:build|setup) failed\]/.test(note)) broken++;
    else if (pack[1] === '?') noTestFiles++;
    else {
      ran++;
      if (pack[1] === 'FAIL' && !results.some((r) => r.pkg === pkg && r.status === 'FAIL')) failedWithoutTest++;
    }
    pkg++;
  }
  if (ran === 0 && broken === 0 && noTestFiles > 0) return { line: at, runner: 'go', counts: zeroCounts() };
  if (ran === 0) return { line: at, runner: 'go', counts: nullCounts() };
  const leaves = results.filter((r) => !results.some((o) => o.pkg === r.pkg && o.name.startsWith(`${r.name}/`)));
  const count = (status: string) => leaves.filter((r) => r.status === status).length;
  const failures = leaves
    .filter((r) => r.status === 'FAIL')
    .slice(0, FAILURES_MAX)
    .map((r) => ({ name: r.name, message: goMessage(lines, r.index, r.indent, r.name) }));
  const failed = count('FAIL');
  const errors = broken + failedWithoutTest;
  if (!verbose) {
    return { line: at, runner: 'go', counts: { passed: null, failed, errors, skipped: null, total: null, noTests: false, failures } };
  }
  const passed = count('PASS');
  const skipped = count('SKIP');
  return { line: at, runner: 'go', counts: withNoTests({ passed, failed, errors, skipped, total: passed + failed + skipped }, failures) };
}

/**
 * A failing go test's first log line: indented under its `--- FAIL` line (plain output), a panic
 * right after it, or (with -v) the lines after its `=== RUN`.
 */
function goMessage(lines: readonly string[], index: number, indent: number, name: string): string | null {
  const next = lines[index + 1] ?? '';
  if (next.startsWith('panic: ') || (leadingSpaces(next) > indent && next.trim() !== '' && !GO_RESULT.test(next))) return next.trim();
  const run = lastIndex(lines, new RegExp(`^=== (?:RUN|CONT)\\s+${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`), index);
  if (run < 0) return null;
  for (let i = run + 1; i < index; i++) {
    const line = lines[i] ?? '';
    if (line.startsWith('=== ') || GO_RESULT.test(line)) break;
    if (line.trim() !== '') return line.trim();
  }
  return null;
}

// ---------------------------------------------------------------- cargo test

// One per test binary (unit tests, each integration test file, doc-tests); a run's counts are their sum.
const CARGO_RESULT = /^test result: (?:ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored; (\d+) measured; \d+ filtered out\b/;
const CARGO_FAILED = /^test (.+) \.\.\. FAILED$/;
const CARGO_NO_BUILD = /^error(?:\[E\d+\])?: could not compile\b/;

function parseCargo(lines: readonly string[]): Candidate | undefined {
  const at = lastIndex(lines, CARGO_RESULT);
  const noBuild = lastIndex(lines, CARGO_NO_BUILD);
  if (at < 0) return noBuild < 0 ? undefined : { line: noBuild, runner: 'cargo', counts: nullCounts() };
  let passed = 0;
  let failed = 0;
  let ignored = 0;
  const failures: TestFailure[] = [];
  for (let i = 0; i <= at; i++) {
    const line = lines[i] ?? '';
    const result = CARGO_RESULT.exec(line);
    if (result) {
      passed += Number(result[1]) + Number(result[4]);
      failed += Number(result[2]);
      ignored += Number(result[3]);
      continue;
    }
    const bad = CARGO_FAILED.exec(line);
    if (bad && failures.length < FAILURES_MAX) failures.push({ name: bad[1] ?? '', message: cargoMessage(lines, bad[1] ?? '', i) });
  }
  let errors = 0;
  for (const line of lines) if (CARGO_NO_BUILD.test(line)) errors++;
  const counts = withNoTests({ passed, failed, errors, skipped: ignored, total: passed + failed + ignored }, failures);
  return { line: Math.max(at, noBuild), runner: 'cargo', counts };
}

/** The panic message in the test's `---- name stdout ----` section. */
function cargoMessage(lines: readonly string[], name: string, from: number): string | null {
  for (let i = from + 1; i < lines.length; i++) {
    if (lines[i] !== `---- ${name} stdout ----`) continue;
    for (let j = i + 1; j < lines.length && j < i + 10; j++) {
      const line = lines[j] ?? '';
      if (line.startsWith('---- ')) return null;
      const old = /panicked at '(.*)', \S+$/.exec(line);
      if (old) return old[1] ?? null;
      if (/ panicked at \S+:$/.test(line)) return nextText(lines, j, lines.length, 1);
    }
    return null;
  }
  return null;
}
