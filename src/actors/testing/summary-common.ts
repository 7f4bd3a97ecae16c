/**
 * What every runner parser of `parse-summary.ts` shares: the counts it returns, ANSI stripping,
 * and the readers of TAP and spec-reporter failure lists that several runners print.
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
export interface Candidate {
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

export function nullCounts(): TestCounts {
  return { passed: null, failed: null, errors: null, skipped: null, total: null, noTests: false, failures: [] };
}

export function zeroCounts(): TestCounts {
  return { passed: 0, failed: 0, errors: 0, skipped: 0, total: 0, noTests: true, failures: [] };
}

/** Index of the last line matching `re`, or -1. */
export function lastIndex(lines: readonly string[], re: RegExp, before = lines.length): number {
  for (let i = Math.min(before, lines.length) - 1; i >= 0; i--) {
    if (re.test(lines[i] ?? '')) return i;
  }
  return -1;
}

export function withNoTests(counts: Omit<TestCounts, 'noTests' | 'failures'>, failures: TestFailure[] = []): TestCounts {
  const noTests = counts.total === 0 && counts.failed === 0 && counts.errors === 0;
  return { ...counts, noTests, failures };
}

const TAP_NOT_OK = /^(\s*)not ok \d+(?: -)? (.*)$/i;
const TAP_POINT = /^\s*(?:not )?ok \d+\b/;
const TAP_SUBTEST = /^(\s*)# Subtest: (.*)$/;
const TAP_ERROR = /^\s*error: (.*)$/;
// ava's TAP reporter puts the assertion message in `message:`; node:test's has `error:`.
const TAP_MESSAGE = /^\s*message: (.*)$/;
const TAP_DIRECTIVE = /(?<!\\) # (?:SKIP|TODO)\b/i;
export const FAILURES_MAX = 50;

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
export function tapFailures(lines: readonly string[], from: number, to: number, options: TapOptions = {}): TestFailure[] {
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

export function leadingSpaces(line: string): number {
  return /^\s*/.exec(line)?.[0].length ?? 0;
}

/** The first non-empty line after `at` (within `to`), trimmed; null when there is none. */
export function nextText(lines: readonly string[], at: number, to = lines.length, within = 6): string | null {
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
export function specFailures(lines: readonly string[], from: number, to: number): TestFailure[] {
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
