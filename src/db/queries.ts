/**
 * The reads, gathered from their tables' files for callers outside `src/` that import them
 * from one place (tests, benchmarks). Code in `src/` imports the table's own file: each of
 * `db/runs.ts`, `db/tasks.ts`, `db/projects.ts`, `db/snapshots.ts`, `db/model-calls.ts`,
 * `db/test-results.ts`, `db/corrections.ts` holds a table's reads beside its writes.
 */
export { ACTIVE_RUN_STATUSES } from '../machines/types.ts';
export { correctionsOf } from './corrections.ts';
export { spentUsd, usageByProject, usageGrouped, usageOfTask, type UsageRow } from './model-calls.ts';
export { allProjects, projectById, type ProjectRow } from './projects.ts';
export { latestRuns, runById, runsOf, type RunRow } from './runs.ts';
export { actorsOfRun, type ActorRow } from './snapshots.ts';
export { dependencyKeys, statusCounts, taskByRef, tasksOf, type TaskRow } from './tasks.ts';
export { baselineBefore, testResultsOf } from './test-results.ts';
