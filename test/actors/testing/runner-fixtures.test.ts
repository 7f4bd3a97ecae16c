/**
 * Every captured runner fixture (test/fixtures/runners/<runner>/<case>.txt, real output of the
 * versions in its cases.json) against counts and failing-test names read off the fixture by hand.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTestSummary } from '../../../src/actors/testing/parse-summary.ts';

const ROOT = join(import.meta.dirname, '..', '..', 'fixtures', 'runners');

/** A failing test: its name, and a substring of its message (null: the runner printed none). */
type Failure = [name: string, message: string | null];

interface Row {
  runner: string;
  case: string;
  passed: number | null;
  failed: number | null;
  errors: number | null;
  skipped: number | null;
  total: number | null;
  noTests: boolean;
  failures: Failure[];
}

const row = (
  runner: string,
  name: string,
  [passed, failed, errors, skipped, total]: [number | null, number | null, number | null, number | null, number | null],
  noTests: boolean,
  failures: Failure[] = [],
): Row => ({ runner, case: name, passed, failed, errors, skipped, total, noTests, failures });

const NONE: [null, null, null, null, null] = [null, null, null, null, null];
const ZERO: [number, number, number, number, number] = [0, 0, 0, 0, 0];

// Counts are [passed, failed, errors, skipped, total]; skipped includes todo everywhere.
const ROWS: Row[] = [
  // ---- ava 7 (default reporter; --tap). With failures ava prints no "passed" line: the ✔ lines count.
  row('ava', 'pass', [2, 0, 0, 0, 2], false),
  row('ava', 'fail', [2, 3, 0, 2, 7], false, [
    ['other > multiplies', null],
    ['other > throws', 'Error thrown in test'],
    ['other > deep fails', null],
  ]),
  row('ava', 'fail-color', [2, 3, 0, 2, 7], false, [
    ['other > multiplies', null],
    ['other > throws', 'Error thrown in test'],
    ['other > deep fails', null],
  ]),
  row('ava', 'fail-tap', [2, 3, 0, 2, 7], false, [
    ['other > multiplies', null],
    ['other > throws', 'Error thrown in test'],
    ['other > deep fails', null],
  ]),
  row('ava', 'no-files', ZERO, true),
  row('ava', 'empty-file', ZERO, true),
  row('ava', 'load-error', [2, 0, 1, 0, 2], false, [['test/broken.test.js', 'Cannot find module']]),

  // ---- cargo 1.95: three test binaries (lib, tests/integration.rs, doc-tests) summed.
  row('cargo', 'pass', [4, 0, 0, 0, 4], false),
  row('cargo', 'fail', [3, 3, 0, 1, 7], false, [
    ['tests::multiplies', 'assertion `left == right` failed'],
    ['tests::nested::deep_fails', 'deep: got 1, want 2'],
    ['tests::throws', 'index out of bounds: the len is 0 but the index is 3'],
  ]),
  row('cargo', 'fail-color', [3, 3, 0, 1, 7], false, [
    ['tests::multiplies', 'assertion `left == right` failed'],
    ['tests::nested::deep_fails', 'deep: got 1, want 2'],
    ['tests::throws', 'index out of bounds: the len is 0 but the index is 3'],
  ]),
  row('cargo', 'no-tests', ZERO, true),
  row('cargo', 'build-error', NONE, false),

  // ---- go 1.19: without -v only failures are printed (passed/skipped/total unknown).
  row('go', 'pass', [null, 0, 0, null, null], false),
  row('go', 'pass-v', [2, 0, 0, 0, 2], false),
  row('go', 'fail', [null, 2, 0, null, null], false, [
    ['TestMultiplies', 'Sum(2, 3) = 5, want 6'],
    ['TestMath/nested/deep_fails', 'deep: got 1, want 2'],
  ]),
  row('go', 'fail-v', [4, 2, 0, 1, 7], false, [
    ['TestMultiplies', 'Sum(2, 3) = 5, want 6'],
    ['TestMath/nested/deep_fails', 'deep: got 1, want 2'],
  ]),
  row('go', 'panic-v', [3, 1, 0, 0, 4], false, [['TestPanics', 'panic: assignment to entry in nil map']]),
  row('go', 'no-tests', ZERO, true),
  row('go', 'build-error', NONE, false),

  // ---- jest 30
  row('jest', 'pass', [2, 0, 0, 0, 2], false),
  row('jest', 'fail', [3, 3, 0, 2, 8], false, [
    ['multiplies', 'expect(received).toBe(expected)'],
    ['throws', "TypeError: Cannot read properties of null (reading 'boom')"],
    ['math > nested > deep fails', 'expect(received).toEqual(expected)'],
  ]),
  row('jest', 'fail-color', [3, 3, 0, 2, 8], false, [
    ['multiplies', 'expect(received).toBe(expected)'],
    ['throws', "TypeError: Cannot read properties of null (reading 'boom')"],
    ['math > nested > deep fails', 'expect(received).toEqual(expected)'],
  ]),
  row('jest', 'no-tests', ZERO, true),
  row('jest', 'load-error', [2, 0, 0, 0, 2], false, [['./broken.test.js', "Cannot find module './nope'"]]),

  // ---- mocha 12, spec reporter: no total printed (passing + failing + pending).
  row('mocha', 'pass', [2, 0, 0, 0, 2], false),
  row('mocha', 'fail', [3, 3, 0, 1, 7], false, [
    ['multiplies', 'AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:'],
    ['throws', "TypeError: Cannot read properties of null (reading 'boom')"],
    ['math > nested > deep fails', 'Expected values to be strictly deep-equal:'],
  ]),
  row('mocha', 'fail-color', [3, 3, 0, 1, 7], false, [
    ['multiplies', 'AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:'],
    ['throws', "TypeError: Cannot read properties of null (reading 'boom')"],
    ['math > nested > deep fails', 'Expected values to be strictly deep-equal:'],
  ]),
  row('mocha', 'no-files', ZERO, true),
  row('mocha', 'empty-file', ZERO, true),
  row('mocha', 'load-error', NONE, false),

  // ---- mocha --reporter tap: `# tests 6` leaves the pending test out; the plan 1..7 counts it.
  // Mocha's TAP joins the suite path with spaces, so it cannot be split back into " > ".
  row('mocha-tap', 'pass', [2, 0, 0, 0, 2], false),
  row('mocha-tap', 'fail', [3, 3, 0, 1, 7], false, [
    ['multiplies', 'Expected values to be strictly equal:'],
    ['throws', "Cannot read properties of null (reading 'boom')"],
    ['math nested deep fails', 'Expected values to be strictly deep-equal:'],
  ]),
  row('mocha-tap', 'no-files', ZERO, true),
  row('mocha-tap', 'empty-file', ZERO, true),
  row('mocha-tap', 'load-error', NONE, false),

  // ---- node 20 --test, spec reporter
  row('node-spec', 'pass', [2, 0, 0, 0, 2], false),
  row('node-spec', 'fail', [2, 3, 0, 2, 7], false, [
    ['multiplies', 'AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:'],
    ['throws', "TypeError [Error]: Cannot read properties of null (reading 'boom')"],
    ['math > nested > deep fails', 'Expected values to be strictly deep-equal:'],
  ]),
  row('node-spec', 'fail-color', [2, 3, 0, 2, 7], false, [
    ['multiplies', 'AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:'],
    ['throws', "TypeError [Error]: Cannot read properties of null (reading 'boom')"],
    ['math > nested > deep fails', 'Expected values to be strictly deep-equal:'],
  ]),
  // Node 20 reports a file without tests as one passing "test" named by its path: not a test.
  row('node-spec', 'empty', ZERO, true),
  row('node-spec', 'missing', ZERO, true),
  row('node-spec', 'load-error', [2, 1, 0, 0, 3], false, [['/tmp/troupe-runners/node-spec/load-error/test/broken.test.mjs', 'test failed']]),

  // ---- node 20 --test, TAP reporter
  row('node-tap', 'pass', [2, 0, 0, 0, 2], false),
  row('node-tap', 'fail', [2, 3, 0, 2, 7], false, [
    ['multiplies', 'Expected values to be strictly equal:'],
    ['throws', "Cannot read properties of null (reading 'boom')"],
    ['math > nested > deep fails', 'Expected values to be strictly deep-equal:'],
  ]),
  row('node-tap', 'empty', ZERO, true),
  row('node-tap', 'missing', ZERO, true),
  row('node-tap', 'load-error', [2, 1, 0, 0, 3], false, [['/tmp/troupe-runners/node-tap/load-error/test/broken.test.mjs', 'test failed']]),

  // ---- pytest 9: total is passed + failed + skipped (the error is counted apart).
  row('pytest', 'pass', [2, 0, 0, 0, 2], false),
  row('pytest', 'fail', [2, 3, 1, 2, 7], false, [
    ['test_other.py::test_multiplies', 'assert (2 + 3) == 6'],
    ['test_other.py::test_throws', "AttributeError: 'NoneType' object has no attribute 'boom'"],
    ['test_other.py::TestMath::test_deep_fails', "AssertionError: assert {'a': 1} == {'a': 2}"],
    ['test_other.py::test_uses_broken', 'RuntimeError: fixture exploded'],
  ]),
  row('pytest', 'fail-color', [2, 3, 1, 2, 7], false, [
    ['test_other.py::test_multiplies', 'assert (2 + 3) == 6'],
    ['test_other.py::test_throws', "AttributeError: 'NoneType' object has no attribute 'boom'"],
    ['test_other.py::TestMath::test_deep_fails', "AssertionError: assert {'a': 1} == {'a': 2}"],
    ['test_other.py::test_uses_broken', 'RuntimeError: fixture exploded'],
  ]),
  row('pytest', 'fail-quiet', [2, 3, 1, 2, 7], false, [
    ['test_other.py::test_multiplies', 'assert (2 + 3) == 6'],
    ['test_other.py::test_throws', "AttributeError: 'NoneType' object has no attribute 'boom'"],
    ['test_other.py::TestMath::test_deep_fails', "AssertionError: assert {'a': 1} == {'a': 2}"],
    ['test_other.py::test_uses_broken', 'RuntimeError: fixture exploded'],
  ]),
  row('pytest', 'no-tests', ZERO, true),
  row('pytest', 'load-error', [0, 0, 1, 0, 0], false, [['test_broken.py', null]]),

  // ---- tap (node-tap 21): `# { total, pass, fail, todo, skip }`; test points nest by subtest
  // (the file is the outer subtest); a subtest closed `not ok` because a child failed is not named.
  row('tap', 'pass', [2, 0, 0, 0, 2], false),
  row('tap', 'fail', [3, 3, 0, 2, 8], false, [
    ['test/other.test.js > multiplies', null],
    ["test/other.test.js > throws > Cannot read properties of null (reading 'boom')", null],
    ['test/other.test.js > math > nested > deep fails', null],
  ]),
  row('tap', 'fail-base', [3, 3, 0, 2, 8], false, [
    ['test/other.test.js > multiplies', null],
    ["test/other.test.js > throws > Cannot read properties of null (reading 'boom')", null],
    ['test/other.test.js > math > nested > deep fails', null],
  ]),
  row('tap', 'fail-raw', [1, 3, 0, 2, 6], false, [
    ['multiplies', null],
    ["throws > Cannot read properties of null (reading 'boom')", null],
    ['math > nested > deep fails', null],
  ]),
  row('tap', 'no-files', ZERO, true),
  row('tap', 'load-error', [2, 1, 0, 0, 3], false, [['test/broken.test.js', null]]),

  // ---- uvu 0.5: Total counts the tests that ran (not the skipped one).
  row('uvu', 'pass', [2, 0, 0, 0, 2], false),
  row('uvu', 'fail', [3, 3, 0, 1, 6], false, [
    ['multiplies', 'Expected values to be strictly equal:'],
    ['throws', "Cannot read properties of null (reading 'boom')"],
    ['math > deep fails', 'Expected values to be deeply equal:'],
  ]),
  row('uvu', 'fail-color', [3, 3, 0, 1, 6], false, [
    ['multiplies', 'Expected values to be strictly equal:'],
    ['throws', "Cannot read properties of null (reading 'boom')"],
    ['math > deep fails', 'Expected values to be deeply equal:'],
  ]),
  row('uvu', 'no-files', ZERO, true),
  row('uvu', 'load-error', NONE, false),

  // ---- vitest 4
  row('vitest', 'pass', [2, 0, 0, 0, 2], false),
  row('vitest', 'fail', [3, 3, 0, 2, 8], false, [
    ['test/other.test.mjs > multiplies', 'AssertionError: expected 5 to be 6'],
    ['test/other.test.mjs > throws', "TypeError: Cannot read properties of null (reading 'boom')"],
    ['test/other.test.mjs > math > nested > deep fails', 'AssertionError: expected { a: 1 } to deeply equal { a: 2 }'],
  ]),
  row('vitest', 'fail-color', [3, 3, 0, 2, 8], false, [
    ['test/other.test.mjs > multiplies', 'AssertionError: expected 5 to be 6'],
    ['test/other.test.mjs > throws', "TypeError: Cannot read properties of null (reading 'boom')"],
    ['test/other.test.mjs > math > nested > deep fails', 'AssertionError: expected { a: 1 } to deeply equal { a: 2 }'],
  ]),
  row('vitest', 'no-files', ZERO, true),
  row('vitest', 'empty-file', ZERO, true, [['test/empty.test.mjs', 'Error: No test suite found in file']]),
  row('vitest', 'load-error', [2, 0, 0, 0, 2], false, [['test/broken.test.mjs', "Error: Cannot find module '../nope.mjs'"]]),
  row('vitest', 'unhandled-error', [4, 0, 1, 0, 4], false),
];

interface Cases {
  cases: { case: string; exitCode: number | null }[];
}

const exitCode = (runner: string, name: string): number | null => {
  const cases = JSON.parse(readFileSync(join(ROOT, runner, 'cases.json'), 'utf8')) as Cases;
  const found = cases.cases.find((c) => c.case === name);
  if (found === undefined) throw new Error(`${runner}/cases.json has no case ${name}`);
  return found.exitCode;
};

describe('parseTestSummary on captured runner output', () => {
  it('has a row for every fixture file, and a fixture file for every row', () => {
    const files = readdirSync(ROOT, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .flatMap((d) => readdirSync(join(ROOT, d.name)).filter((f) => f.endsWith('.txt')).map((f) => `${d.name}/${f.slice(0, -4)}`))
      .sort();
    expect(ROWS.map((r) => `${r.runner}/${r.case}`).sort()).toEqual(files);
  });

  it.each(ROWS)('$runner/$case', (r) => {
    const text = readFileSync(join(ROOT, r.runner, `${r.case}.txt`), 'utf8');
    const got = parseTestSummary(text, exitCode(r.runner, r.case));
    expect({ ...got, failures: got.failures.map((f) => f.name) }).toEqual({
      passed: r.passed,
      failed: r.failed,
      errors: r.errors,
      skipped: r.skipped,
      total: r.total,
      noTests: r.noTests,
      failures: r.failures.map(([name]) => name),
    });
    r.failures.forEach(([, message], i) => {
      const actual = got.failures[i]?.message;
      if (message === null) expect(actual).toBeNull();
      else expect(actual).toContain(message);
    });
  });

  it('gives all-null counts for output no runner printed', () => {
    const text = 'Starting build…\nrandom words 3 and 4\n  ok then\nDone in 2.1s\nFAIL: maybe\n';
    for (const code of [0, 1, null]) {
      expect(parseTestSummary(text, code)).toEqual({
        passed: null, failed: null, errors: null, skipped: null, total: null, noTests: false, failures: [],
      });
    }
  });
});
