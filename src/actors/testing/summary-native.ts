/**
 * Summaries of pytest, go test and cargo test.
 */
import { type Candidate, FAILURES_MAX, lastIndex, leadingSpaces, nextText, nullCounts, type TestFailure, withNoTests, zeroCounts } from './summary-common.ts';
import { countPieces } from './summary-js.ts';

// ---------------------------------------------------------------- pytest

export const PYTEST_HEADER = /^=+ test session starts =+$/;
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

export function parsePytest(lines: readonly string[]): Candidate | undefined {
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
export function parseGo(lines: readonly string[]): Candidate | undefined {
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

export function parseCargo(lines: readonly string[]): Candidate | undefined {
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
