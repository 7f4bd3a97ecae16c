import { describe, expect, it } from 'vitest';
import { parseTestSummary, stripAnsi } from '../../../src/actors/testing/parse-summary.ts';

const ESC = '\u001b';
const counts = (passed: number, failed: number, skipped: number, total: number | null, errors = 0, noTests = false) => ({
  passed,
  failed,
  errors,
  skipped,
  total,
  noTests,
  failures: expect.any(Array) as unknown,
});
/** Output no parser understood: every count null, never a made-up 0. */
const unknown = { passed: null, failed: null, errors: null, skipped: null, total: null, noTests: false, failures: [] };

describe('parseTestSummary: node:test', () => {
  const tap = `TAP version 13
# Subtest: adds
ok 1 - adds
  ---
  duration_ms: 0.6
  ...
# Subtest: broken
not ok 2 - broken
  ---
  duration_ms: 0.9
  failureType: 'testCodeFailure'
  error: 'Expected values to be strictly equal'
  ...
# Subtest: later
ok 3 - later # TODO
1..3
# tests 4
# suites 0
# pass 1
# fail 1
# cancelled 1
# skipped 0
# todo 1
# duration_ms 140.003004
`;

  it('reads the TAP reporter summary; cancelled counts as failed, todo as skipped', () => {
    expect(parseTestSummary(tap, 1)).toEqual(counts(1, 2, 1, 4));
  });

  it('names failing TAP tests with their suite path and the first line of the error; a suite failing only through its tests is not named', () => {
    // Captured from node v20.20.2: `node --test` on one file, not a terminal (TAP).
    const out = [
      'TAP version 13', '# Subtest: old works', 'ok 1 - old works', '  ---', '  duration_ms: 2.4', '  ...',
      '# Subtest: old is broken', 'not ok 2 - old is broken', '  ---', '  duration_ms: 2.47', "  location: '/tmp/nt/test/old.test.js:4:1'",
      "  failureType: 'testCodeFailure'", '  error: |-', '    Expected values to be strictly equal:', '    ', '    1 !== 2', '    ', "  code: 'ERR_ASSERTION'", '  ...',
      '# Subtest: suite', '    # Subtest: inner fails', '    not ok 1 - inner fails', '      ---', "      failureType: 'testCodeFailure'", '      error: |-',
      '        The expression evaluated to a falsy value:', '      ...', '    1..1', 'not ok 3 - suite', '  ---', "  type: 'suite'", "  failureType: 'subtestsFailed'",
      "  error: '1 subtest failed'", '  ...', '1..3', '# tests 3', '# suites 1', '# pass 1', '# fail 2', '# cancelled 0', '# skipped 0', '# todo 0', '# duration_ms 60.1', '',
    ].join('\n');
    expect(parseTestSummary(out, 1)).toEqual({
      ...counts(1, 2, 0, 3),
      failures: [
        { name: 'old is broken', message: 'Expected values to be strictly equal:' },
        { name: 'suite > inner fails', message: 'The expression evaluated to a falsy value:' },
      ],
    });
  });

  it('reads the spec reporter summary', () => {
    const spec = `✔ adds (0.98ms)
✖ broken (0.31ms)
  AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:
ℹ tests 3
ℹ suites 1
ℹ pass 2
ℹ fail 1
ℹ cancelled 0
ℹ skipped 0
ℹ todo 0
ℹ duration_ms 135.689797
`;
    expect(parseTestSummary(spec, 1)).toEqual(counts(2, 1, 0, 3));
  });

  it('sees "# tests 0" as no tests', () => {
    const out = 'TAP version 13\n1..0\n# tests 0\n# suites 0\n# pass 0\n# fail 0\n# cancelled 0\n# skipped 0\n# todo 0\n# duration_ms 3.3\n';
    expect(parseTestSummary(out, 0)).toEqual(counts(0, 0, 0, 0, 0, true));
  });

  it('does not count the placeholder Node 20 prints for a file without tests', () => {
    const tapOut = `TAP version 13
# Subtest: /tmp/ws/empty.test.mjs
ok 1 - /tmp/ws/empty.test.mjs
  ---
  duration_ms: 96.04
  ...
1..1
# tests 1
# pass 1
# fail 0
`;
    expect(parseTestSummary(tapOut, 0)).toMatchObject({ passed: 0, total: 0, noTests: true });
    const specOut = '✔ a (1.03ms)\n✔ /tmp/ws/empty.test.mjs (65.59ms)\nℹ tests 2\nℹ pass 2\nℹ fail 0\n';
    expect(parseTestSummary(specOut, 0)).toMatchObject({ passed: 1, total: 1, noTests: false });
  });

  it('keeps a file that failed to load as a failure', () => {
    const out = '✖ /tmp/ws/bad.test.mjs (81.55ms)\n  \'test failed\'\nℹ tests 1\nℹ pass 0\nℹ fail 1\n';
    expect(parseTestSummary(out, 1)).toEqual(counts(0, 1, 0, 1));
  });

  it('sees "Could not find" (a test path that does not exist) as no tests', () => {
    expect(parseTestSummary("Could not find '/tmp/ws/missing.test.mjs'\n", 1).noTests).toBe(true);
  });
});

describe('parseTestSummary: vitest', () => {
  // Real vitest 4 output, colours and all.
  const colored = [
    `${ESC}[2m Test Files ${ESC}[22m ${ESC}[1m${ESC}[31m1 failed${ESC}[39m${ESC}[22m${ESC}[2m | ${ESC}[22m${ESC}[1m${ESC}[32m1 passed${ESC}[39m${ESC}[22m${ESC}[90m (2)${ESC}[39m`,
    `${ESC}[2m      Tests ${ESC}[22m ${ESC}[1m${ESC}[31m2 failed${ESC}[39m${ESC}[22m${ESC}[2m | ${ESC}[22m${ESC}[1m${ESC}[32m10 passed${ESC}[39m${ESC}[22m${ESC}[2m | ${ESC}[22m${ESC}[33m1 skipped${ESC}[39m${ESC}[2m | ${ESC}[22m${ESC}[90m1 todo${ESC}[39m${ESC}[90m (14)${ESC}[39m`,
    `${ESC}[2m     Errors ${ESC}[22m ${ESC}[1m${ESC}[31m1 error${ESC}[39m${ESC}[22m`,
    `${ESC}[2m   Start at ${ESC}[22m 02:51:25`,
    `${ESC}[2m   Duration ${ESC}[22m 359ms`,
  ].join('\n');

  it('reads the Tests line (not Test Files) and the Errors line through ANSI colours', () => {
    expect(parseTestSummary(colored, 1)).toEqual(counts(10, 2, 2, 14, 1));
  });

  it('reads a plain passing summary', () => {
    const out = ' ✓ src/sum.test.ts (3 tests) 2ms\n\n Test Files  1 passed (1)\n      Tests  3 passed (3)\n   Start at  10:00:00\n   Duration  210ms\n';
    expect(parseTestSummary(out, 0)).toEqual(counts(3, 0, 0, 3));
  });

  it('sees "No test files found" as no tests', () => {
    const out = `\n RUN  v4.1.12 /tmp/e\n\n${ESC}[31mNo test files found, exiting with code 1\n${ESC}[39m\ninclude: **/*.test.mjs\n`;
    expect(parseTestSummary(out, 1)).toEqual(counts(0, 0, 0, 0, 0, true));
  });

  it('sees "Tests  no tests" as no tests', () => {
    const out = ' FAIL  z.test.mjs [ z.test.mjs ]\nError: No test suite found in file /tmp/f/z.test.mjs\n\n Test Files  1 failed (1)\n      Tests  no tests\n   Start at  02:51:26\n';
    expect(parseTestSummary(out, 1)).toEqual(counts(0, 0, 0, 0, 0, true));
  });
});

describe('parseTestSummary: jest', () => {
  it('reads the Tests: line', () => {
    const out = `FAIL src/sum.test.js
  ● sum › adds

Test Suites: 1 failed, 1 passed, 2 total
Tests:       1 failed, 2 skipped, 1 todo, 10 passed, 14 total
Snapshots:   0 total
Time:        1.234 s
Ran all test suites.
`;
    expect(parseTestSummary(out, 1)).toEqual(counts(10, 1, 3, 14));
  });

  it('sees "No tests found" as no tests', () => {
    const out = 'No tests found, exiting with code 1\nRun with `--passWithNoTests` to exit with code 0\nIn /app\n  12 files checked.\n';
    expect(parseTestSummary(out, 1).noTests).toBe(true);
  });
});

describe('parseTestSummary: pytest', () => {
  it('reads the final rule with failures, errors and skips', () => {
    const out = `============================= test session starts ==============================
platform linux -- Python 3.12.1, pytest-8.0.0, pluggy-1.4.0
collected 14 items

tests/test_sum.py ..F.F.s.E.....                                         [100%]

=========================== short test summary info ============================
FAILED tests/test_sum.py::test_add - assert 2 == 3
============== 2 failed, 10 passed, 1 skipped, 1 error in 0.12s ===============
`;
    expect(parseTestSummary(out, 1)).toEqual(counts(10, 2, 1, 13, 1));
  });

  it('maps xfailed to skipped and xpassed to passed, ignores warnings and deselected', () => {
    const out = '=== 3 passed, 1 xfailed, 1 xpassed, 2 deselected, 4 warnings in 1.05s (0:00:01) ===\n';
    expect(parseTestSummary(out, 0)).toEqual(counts(4, 0, 1, 5));
  });

  it('reads the -q form and plural errors', () => {
    expect(parseTestSummary('..E\n1 passed, 2 errors in 0.30s\n', 1)).toEqual(counts(1, 0, 0, 1, 2));
  });

  it('sees a collection error as errors, not as no tests', () => {
    const out = '!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!\n=============================== 1 error in 0.08s ===============================\n';
    expect(parseTestSummary(out, 2)).toEqual(counts(0, 0, 0, 0, 1, false));
  });

  it('sees "no tests ran" and exit code 5 as no tests', () => {
    expect(parseTestSummary('\nno tests ran in 0.01s\n', 5).noTests).toBe(true);
    const deselected = '============================= test session starts ==============================\ncollected 3 items / 3 deselected\n\n============================ 3 deselected in 0.01s =============================\n';
    expect(parseTestSummary(deselected, 5).noTests).toBe(true);
  });

  it('ignores exit code 5 from something that is not pytest', () => {
    expect(parseTestSummary('weird\n', 5)).toEqual(unknown);
  });

  it('does not take "3 files in 0.2s" from another tool for a pytest summary', () => {
    expect(parseTestSummary('3 files in 0.2s\n', 0).total).toBeNull();
  });
});

describe('parseTestSummary: general', () => {
  it('returns null counts (never zeros) for unknown output', () => {
    expect(parseTestSummary('hello\nworld\n', 0)).toEqual(unknown);
    expect(parseTestSummary('', null)).toEqual(unknown);
    expect(parseTestSummary('make: *** [Makefile:3: test] Error 2\n', 2)).toEqual(unknown);
  });

  it('prefers the last summary in the output', () => {
    const out = '# tests 1\n# pass 1\n# fail 0\n...\n      Tests  1 failed | 4 passed (5)\n';
    expect(parseTestSummary(out, 1)).toEqual(counts(4, 1, 0, 5));
    const twoNodeRuns = '# tests 0\n# pass 0\n# fail 0\n# tests 2\n# pass 2\n# fail 0\n';
    expect(parseTestSummary(twoNodeRuns, 0)).toEqual(counts(2, 0, 0, 2));
  });

  it('handles CRLF line endings', () => {
    expect(parseTestSummary('Tests:       2 passed, 2 total\r\n', 0)).toEqual(counts(2, 0, 0, 2));
  });

  it('strips CSI and OSC escapes', () => {
    expect(stripAnsi(`${ESC}[1;31mred${ESC}[0m ${ESC}]8;;https://x.test${ESC}\\link${ESC}]8;;${ESC}\\`)).toBe('red link');
  });
});
