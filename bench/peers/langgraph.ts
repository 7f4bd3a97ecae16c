/**
 * LangGraph.js with its Postgres checkpointer: a StateGraph of the loop's nodes (generate, apply,
 * test; a conditional edge to correct while attempts are left), compiled with `PostgresSaver`
 * (node-postgres pool), one thread per task, LangGraph's default durability (`async`: each
 * step's checkpoint is written while the next step runs).
 */
import { Annotation, END, START, StateGraph } from '@langchain/langgraph';
import { PostgresSaver } from '@langchain/langgraph-checkpoint-postgres';
import type { TestRunResult } from '../../src/actors/testing/run-tests.ts';
import { POOL_MAX, ROWS_SQL, answerFor, inPool, rowsOf, taskKeys, testResultFor, type FakeFile, type Side, type TableRow } from './work.ts';

const SCHEMA = 'peers_langgraph';
const MAX_CORRECTIONS = 3;

/** What the bench needs of node-postgres (no @types/pg here: the checkpointer's pool, seen through this). */
interface PgClient {
  query: (...args: unknown[]) => unknown;
  release(): void;
}
interface PgPool {
  on(event: 'connect', listener: (client: PgClient) => void): void;
  connect(): Promise<PgClient>;
  query(text: string, values: unknown[]): Promise<{ rows: TableRow[] }>;
}

const State = Annotation.Root({
  task: Annotation<string>,
  attempt: Annotation<number>,
  files: Annotation<FakeFile[]>,
  explanation: Annotation<string>,
  applied: Annotation<{ path: string; bytes: number }[]>,
  tested: Annotation<TestRunResult | null>,
  failure: Annotation<string | null>,
});

export async function openLanggraph(url: string): Promise<Side> {
  const saver = PostgresSaver.fromConnString(`${url}?application_name=peers-langgraph`, { schema: SCHEMA });
  const pool = (saver as unknown as { pool: PgPool }).pool;
  let statements = 0;
  pool.on('connect', (client) => {
    const query = client.query.bind(client);
    client.query = (...args: unknown[]) => {
      statements++;
      return query(...args);
    };
  });
  await saver.setup();
  const workspace = new Map<string, string>();

  const graph = new StateGraph(State)
    .addNode('generate', (s) => {
      const attempt = (s.attempt ?? 0) + 1;
      const answer = answerFor(s.task, attempt);
      return { attempt, files: answer.files, explanation: answer.explanation };
    })
    .addNode('apply', (s) => {
      for (const f of s.files) workspace.set(f.path, f.content);
      return { applied: s.files.map((f) => ({ path: f.path, bytes: f.content.length })) };
    })
    .addNode('test', (s) => ({ tested: testResultFor(s.attempt) }))
    .addNode('correct', (s) => ({ failure: s.tested?.summary ?? 'unknown failure' }))
    .addEdge(START, 'generate')
    .addEdge('generate', 'apply')
    .addEdge('apply', 'test')
    .addConditionalEdges('test', (s) => (s.tested?.status !== 'passed' && s.attempt - 1 < MAX_CORRECTIONS ? 'correct' : END), ['correct', END])
    .addEdge('correct', 'generate')
    .compile({ checkpointer: saver });

  return {
    async run(round, tasks, concurrency) {
      workspace.clear();
      const before = statements;
      const started = performance.now();
      await inPool(taskKeys(round, tasks), concurrency, async (task) => {
        const out = await graph.invoke({ task, attempt: 0, tested: null, failure: null }, { configurable: { thread_id: task } });
        if (out.tested?.status !== 'passed') throw new Error(`langgraph loop of ${task} ended ${out.tested?.status ?? 'without a test'}`);
      });
      return { ms: performance.now() - started, statements: statements - before };
    },
    async flushStats() {
      const clients = await Promise.all(Array.from({ length: POOL_MAX }, () => pool.connect()));
      try {
        await Promise.all(clients.map((c) => c.query('select pg_stat_force_next_flush()')));
      } finally {
        for (const c of clients) c.release();
      }
    },
    async rows() {
      const { rows } = await pool.query(ROWS_SQL, [SCHEMA]);
      return rowsOf(rows);
    },
    close: () => saver.end(),
  };
}
