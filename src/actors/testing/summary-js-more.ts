/**
 * Summaries of mocha (spec and TAP), ava (default and TAP), node-tap and uvu.
 */
import { type Candidate, FAILURES_MAX, lastIndex, nextText, tapFailures, type TestFailure, withNoTests, zeroCounts } from './summary-common.ts';

// ---------------------------------------------------------------- mocha (spec reporter)

// `  3 passing (15ms)`, then `  1 pending` and `  3 failing` when there are any.
const MOCHA_PASSING = /^\s*(\d+) passing \(\d+(?:\.\d+)?(?:ms|s|m|h)\)$/;
const MOCHA_OTHER = /^\s*(\d+) (pending|failing)$/;
const MOCHA_RECAP = /^ {2}(\d+)\) (.*)$/;

export function parseMocha(lines: readonly string[]): Candidate | undefined {
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
export function parseMochaTap(lines: readonly string[]): Candidate | undefined {
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

export function parseAva(lines: readonly string[]): Candidate | undefined {
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
export function parseAvaTap(lines: readonly string[]): Candidate | undefined {
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

export function parseTap(lines: readonly string[]): Candidate | undefined {
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

export function parseUvu(lines: readonly string[]): Candidate | undefined {
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
