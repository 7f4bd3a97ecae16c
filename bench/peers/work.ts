/**
 * The work every side of `bench/peers` does: one agent loop per task, generate → apply → test
 * (fails) → correct → generate → apply → test (passes), seven steps. The effects are fakes in
 * memory and the same on every side: a generated answer of four files (about 4 KiB), files
 * "written" to a Map, a test result object (about 1 KiB of output); no model, no files, no
 * processes. What differs is only what each side writes to Postgres per step.
 */
import type postgres from 'postgres';
import type { Tally } from './statements.ts';
import type { TestRunResult } from '../../src/actors/testing/run-tests.ts';

/** Steps of one task's loop: generate, apply, test, correct, generate, apply, test. */
export const STEPS = 7;

export interface FakeFile {
  path: string;
  action: 'create';
  content: string;
}

export interface Answer {
  files: FakeFile[];
  explanation: string;
}

const LINE = 'export function handler(request: Request): Response { return new Response("ok"); }\n';

/** The model's answer for attempt `attempt` of `key`: four files of about 1 KiB each. */
export function answerFor(key: string, attempt: number): Answer {
  const files = ['src/handler.ts', 'src/routes.ts', 'test/handler.test.ts', 'README.md'].map((p, i) => ({
    path: `${key}/${p}`,
    action: 'create' as const,
    content: `// ${key}, attempt ${attempt}, file ${i}\n${LINE.repeat(12)}`,
  }));
  return { files, explanation: `attempt ${attempt} of ${key}: the handler, its route and its test` };
}

const FAILING_OUTPUT = `FAIL test/handler.test.ts > handler > answers ok\nAssertionError: expected 500 to be 200\n${'    at handler.test.ts:12:5\n'.repeat(30)}`;

/** The test run of attempt `attempt`: the first fails, the correction passes. */
export function testResultFor(attempt: number): TestRunResult {
  const failed = attempt < 2;
  return {
    status: failed ? 'failed' : 'passed',
    passed: failed ? 11 : 12,
    failed: failed ? 1 : 0,
    errors: 0,
    skipped: 0,
    total: 12,
    failures: failed ? [{ name: 'handler > answers ok', message: 'AssertionError: expected 500 to be 200' }] : [],
    exitCode: failed ? 1 : 0,
    signal: null,
    durationMs: 40,
    output: failed ? FAILING_OUTPUT : ` ✓ test/handler.test.ts (12 tests)\n${' ✓ handler > case\n'.repeat(40)}`,
    outputBytes: 1100,
    truncated: false,
    sandbox: 'none',
    summary: failed ? '1 failed, 11 passed' : '12 passed',
  };
}

/** Runs `fn` for every item, at most `concurrency` at a time. */
export async function inPool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
}

export const taskKeys = (round: number, tasks: number) => Array.from({ length: tasks }, (_, i) => `r${round}-t${i}`);

/** Tuples written, from `pg_stat_user_tables` (after every connection flushed its counters). */
export interface Rows {
  inserted: number;
  updated: number;
  deleted: number;
  /** Tuples written (inserted + updated + deleted), by table. */
  byTable: Record<string, number>;
}

export interface TableRow {
  relname: string;
  ins: string;
  upd: string;
  del: string;
}

export function rowsOf(tables: readonly TableRow[]): Rows {
  const rows: Rows = { inserted: 0, updated: 0, deleted: 0, byTable: {} };
  for (const t of tables) {
    rows.inserted += Number(t.ins);
    rows.updated += Number(t.upd);
    rows.deleted += Number(t.del);
    rows.byTable[t.relname] = Number(t.ins) + Number(t.upd) + Number(t.del);
  }
  return rows;
}

/** What `after` has more than `before`. */
export function rowsBetween(before: Rows, after: Rows): Rows {
  const byTable: Record<string, number> = {};
  for (const [table, n] of Object.entries(after.byTable)) {
    const d = n - (before.byTable[table] ?? 0);
    if (d > 0) byTable[table] = d;
  }
  return { inserted: after.inserted - before.inserted, updated: after.updated - before.updated, deleted: after.deleted - before.deleted, byTable };
}

/** One side of the comparison, opened inside its own child process. */
export interface Side {
  /** What a batch needs before it starts (Troupe: the project and its tasks); not timed, not counted. */
  prepare?(round: number, tasks: number, concurrency: number): Promise<void>;
  /** Runs `tasks` loops, `concurrency` at a time; the statements it sent. */
  run(round: number, tasks: number, concurrency: number): Promise<{ ms: number; statements: number; detail?: Record<string, Tally> }>;
  /** Makes every pooled connection publish its table counters now (`pg_stat_force_next_flush`). */
  flushStats(): Promise<void>;
  /** Tuple counters of the side's own schema. */
  rows(): Promise<Rows>;
  close(): Promise<void>;
}

export const ROWS_SQL = 'select relname, n_tup_ins as ins, n_tup_upd as upd, n_tup_del as del from pg_stat_user_tables where schemaname = $1';

/** Connections in every side's pool: the same for all three (Troupe's default store has 10). */
export const POOL_MAX = 10;

/** `flushStats` for a postgres.js pool: every one of its connections, reserved at once. */
export async function flushPostgresJs(sql: postgres.Sql): Promise<void> {
  const conns = await Promise.all(Array.from({ length: POOL_MAX }, () => sql.reserve()));
  try {
    await Promise.all(conns.map((c) => c`select pg_stat_force_next_flush()`));
  } finally {
    for (const c of conns) c.release();
  }
}

/** `rows` for a postgres.js pool. */
export async function rowsPostgresJs(sql: postgres.Sql, schema: string): Promise<Rows> {
  return rowsOf(await sql.unsafe<TableRow[]>(ROWS_SQL, [schema]));
}
