/**
 * The floor: a plain async pool that runs the loop and writes one row per step, each insert its
 * own statement and its own commit (postgres.js, autocommit). Nothing less is durable per step.
 */
import postgres from 'postgres';
import { POOL_MAX, flushPostgresJs, rowsPostgresJs, answerFor, inPool, taskKeys, testResultFor, type Side } from './work.ts';

const SCHEMA = 'peers_floor';

export async function openFloor(url: string): Promise<Side> {
  let statements = 0;
  const sql = postgres(url, {
    max: POOL_MAX,
    onnotice: () => undefined,
    connection: { application_name: 'peers-floor' },
    debug: () => {
      statements++;
    },
  });
  await sql.unsafe(`create schema if not exists ${SCHEMA}`);
  await sql.unsafe(`create table if not exists ${SCHEMA}.steps (
    id bigserial primary key, task text not null, step int not null, kind text not null,
    payload jsonb not null, at timestamptz not null default now())`);
  const workspace = new Map<string, string>();

  const write = (task: string, step: number, kind: string, payload: unknown) =>
    sql`insert into ${sql(SCHEMA)}.steps (task, step, kind, payload) values (${task}, ${step}, ${kind}, ${sql.json(payload as postgres.JSONValue)})`;

  const loop = async (task: string) => {
    let step = 0;
    let failure: string | null = null;
    for (let attempt = 1; attempt <= 2; attempt++) {
      const answer = answerFor(task, attempt);
      await write(task, ++step, 'generate', { attempt, failure, ...answer });
      for (const f of answer.files) workspace.set(f.path, f.content);
      await write(task, ++step, 'apply', { attempt, files: answer.files.map((f) => ({ path: f.path, bytes: f.content.length })) });
      const result = testResultFor(attempt);
      await write(task, ++step, 'test', { attempt, ...result });
      if (result.status === 'passed') return;
      failure = result.summary;
      await write(task, ++step, 'correct', { correction: attempt, failure });
    }
  };

  return {
    async run(round, tasks, concurrency) {
      workspace.clear();
      const before = statements;
      const started = performance.now();
      await inPool(taskKeys(round, tasks), concurrency, loop);
      return { ms: performance.now() - started, statements: statements - before };
    },
    flushStats: () => flushPostgresJs(sql),
    rows: () => rowsPostgresJs(sql, SCHEMA),
    close: () => sql.end({ timeout: 5 }),
  };
}
