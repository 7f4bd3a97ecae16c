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

import { PYTEST_HEADER, parsePytest, parseGo, parseCargo } from './summary-native.ts';
import { parseNodeTest, parseVitest, parseJest } from './summary-js.ts';
import { parseMocha, parseMochaTap, parseAva, parseAvaTap, parseTap, parseUvu } from './summary-js-more.ts';
import { nullCounts, stripAnsi, type Candidate, type TestCounts } from './summary-common.ts';

export { stripAnsi, type TestCounts, type TestFailure } from './summary-common.ts';

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
