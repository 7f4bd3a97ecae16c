/**
 * Baselines in the database: a `test_results` row with `phase: 'baseline'` and no task (the base
 * tree is the project's, not a task's), told as a `test.result` event with `attempt: 0`.
 */
import { withDbRetry } from '../../db/retry.ts';
import { cachedBaselineRow, insertTestResult } from '../../db/test-results.ts';
import type { Outbox } from '../../events/outbox.ts';
import { event } from '../../events/types.ts';
import type { TestStatus } from '../../machines/types.ts';
import { storableText } from '../../safe-text.ts';
import { baselineOf, type BaselineStore } from '../preflight.ts';
import type { TestRunResult } from '../testing/run-tests.ts';
import type { RunFence } from './lead-writer.ts';
import { fencedWriter, STORED_OUTPUT_MAX, testResultSummary } from './records.ts';

/** The lead's agent id: a baseline is the lead's doing, before any worker exists. */
const LEAD = 'lead';

export function createBaselineStore(outbox: Outbox, fence?: RunFence): BaselineStore {
  const db = outbox.store.db;
  const runWrite = fencedWriter(outbox, fence);
  return {
    async cachedBaseline(projectId, commit) {
      // Valid only since the project's settings (test command, sandbox, timeout) last changed.
      const r = await withDbRetry(() => cachedBaselineRow(db, projectId, commit));
      if (!r) return null;
      const result: TestRunResult = {
        status: r.status as TestStatus,
        passed: r.passed,
        failed: r.failed,
        errors: r.errors,
        skipped: r.skipped,
        total: r.total,
        failures: r.failures,
        exitCode: r.exitCode,
        signal: null,
        durationMs: r.durationMs,
        output: r.output,
        outputBytes: Buffer.byteLength(r.output),
        truncated: false,
        sandbox: r.sandbox === 'bwrap' ? 'bwrap' : 'none',
        summary: r.summary ?? r.status,
      };
      return { ...baselineOf(commit, result), result };
    },

    baselineResult: (scope, commit, result, cached) =>
      runWrite(scope.runId, async (tx, emit) => {
        const summary = testResultSummary(result, 0, 'baseline', result.status === 'passed');
        if (!cached) {
          await insertTestResult(tx, {
            projectId: scope.projectId,
            taskId: null,
            runId: scope.runId,
            agentId: LEAD,
            epoch: 0,
            commit,
            summary: storableText(result.summary),
            ...summary,
            exitCode: result.exitCode,
            output: storableText(result.output.length > STORED_OUTPUT_MAX ? result.output.slice(-STORED_OUTPUT_MAX) : result.output),
          });
        }
        emit(event('test.result', { ...summary, ...(cached ? { cached: true } : {}), ...(commit ? { commit } : {}) }, { projectId: scope.projectId, runId: scope.runId, agentId: LEAD }));
      }),
  };
}
