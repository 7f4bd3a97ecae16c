/**
 * The pay-once journal over the suite's real database (PGlite or Postgres) with the real SDK
 * against the scripted Messages API: answers with NUL or lone surrogates are kept exactly, two
 * calls racing for one key are both billed and both act on the answer recorded first, and a
 * failed statement never surfaces as SQL.
 */
import Anthropic from '@anthropic-ai/sdk';
import { eq, sql } from 'drizzle-orm';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAndRecord, type CallOnceRequest } from '../../../src/actors/model/journal.ts';
import { createRecords } from '../../../src/actors/runtime/records.ts';
import { spentUsd } from '../../../src/db/queries.ts';
import { withDbRetry } from '../../../src/db/retry.ts';
import { modelCalls, tasks } from '../../../src/db/schema.ts';
import { StorageError, coerceError, safeReason } from '../../../src/errors.ts';
import type { Reply } from '../../../src/scripted-model/server.ts';
import { deferred } from '../../support/deferred.ts';
import { writeFiles } from '../../support/replies.ts';
import { startTestRuntime, type TestRuntime } from '../../support/runtime.ts';

const odd = writeFiles({ 'a\u0000.bin': 'x\u0000y', 'b.txt': 'lone \ud800 and \udfff, pair 😀' }, 'nul \u0000');
const race = { first: deferred(), second: deferred(), n: 0 };

/** One runtime for the file (a database and a scripted model); each test has its own project. */
let t: TestRuntime;
let client: Anthropic;
beforeAll(async () => {
  t = await startTestRuntime(async (req) => {
    if (req.text.includes('gen:odd')) return odd;
    if (!req.text.includes('gen:race')) return writeFiles({ 'c.txt': 'plain' });
    const mine = ++race.n;
    (mine === 1 ? race.first : race.second).resolve();
    // Both requests are in flight before either is answered: a real race, not a timing bet.
    await Promise.all([race.first.promise, race.second.promise]);
    return writeFiles({ 'race.txt': `answer ${mine}` });
  });
  client = new Anthropic({ baseURL: t.model.url, apiKey: 'sk-test-not-a-secret', maxRetries: 0 });
});
afterAll(() => t.close());

const MODEL = 'claude-sonnet-4-6';

function request(projectId: string, callKey: string): CallOnceRequest {
  return {
    projectId,
    runId: null,
    taskId: null,
    agentId: 'backend-1',
    callKey,
    purpose: 'generate',
    signal: new AbortController().signal,
    params: { model: MODEL, max_tokens: 100, messages: [{ role: 'user', content: `Task key: race\nAttempt: 1\n${callKey}` }] },
  };
}

const toolInputOf = (message: Anthropic.Message) => (message.content[0] as Anthropic.ToolUseBlock).input;

describe('the model journal over the database', () => {
  it('keeps an answer with NUL and lone surrogates exactly, and a plain answer as itself', async () => {
    const projectId = await t.project({ name: 'journal', testCommand: 'node --test' });
    const records = createRecords(t.runtime.outbox);
    const deps = { client, journal: records };

    const answered = await callAndRecord(deps, request(projectId, 'gen:odd'));
    const found = await records.find(projectId, 'gen:odd');
    expect(found).toEqual(answered);
    expect(toolInputOf(found!)).toEqual((odd as Extract<Reply, { kind: 'tool' }>).input);

    await callAndRecord(deps, request(projectId, 'gen:plain'));
    const rows = await t.store.db
      .select({ callKey: modelCalls.callKey, type: sql<string | null>`${modelCalls.response}->>'type'` })
      .from(modelCalls)
      .where(eq(modelCalls.projectId, projectId))
      .orderBy(modelCalls.callKey);
    // The plain answer is a readable row; the odd one is stored as its JSON text.
    expect(rows.map((r) => [r.callKey, r.type])).toEqual([
      ['gen:odd', null],
      ['gen:plain', 'message'],
    ]);
    const usage = (await t.events(projectId)).filter((e) => e.type === 'llm.usage');
    expect(usage).toHaveLength(2);
  });

  it('two calls racing for one key: both are billed, both return the answer recorded first', async () => {
    const projectId = await t.project({ name: 'race', testCommand: 'node --test' });
    const records = createRecords(t.runtime.outbox);

    const [a, b] = await Promise.all([
      callAndRecord({ client, journal: records }, request(projectId, 'gen:race')),
      callAndRecord({ client, journal: records }, request(projectId, 'gen:race')),
    ]);

    expect(t.model.requests.filter((r) => r.text.includes('gen:race'))).toHaveLength(2);
    expect(a).toEqual(b);
    expect(await records.find(projectId, 'gen:race')).toEqual(a);
    const usage = await t.runtime.usage(projectId);
    expect(usage.totals).toMatchObject({ inputTokens: 2 * 1200, outputTokens: 2 * 400 });
    const oneCall = (1200 * 3 + 400 * 15) / 1e6;
    expect(await spentUsd(t.store.db, projectId)).toBeCloseTo(2 * oneCall, 9);
    expect((await t.events(projectId)).filter((e) => e.type === 'llm.usage')).toHaveLength(2);
  });
});

describe('a failed statement', () => {
  it('becomes a short StorageError naming the Postgres code: no SQL, no values, in the message or the log line', async () => {
    const projectId = await t.project({ name: 'sql', testCommand: 'node --test' });
    const secretish = `the model's answer ${'x'.repeat(5000)} \u0000`;
    const thrown = await withDbRetry(() =>
      t.store.db.insert(tasks).values({ id: 'tsk_nul', projectId, key: 'k', title: 't', description: secretish, agentType: 'backend', priority: 2, status: 'pending' }),
    ).catch((e: unknown) => e);

    expect(thrown).toBeInstanceOf(StorageError);
    const error = coerceError(thrown);
    expect(error.message).toMatch(/^database error (22021|22P05): /);
    expect(error.message.length).toBeLessThan(250);
    const logged: string[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => logged.push(line) });
    logger.error({ err: error }, 'failed');
    expect(logged.join('')).not.toMatch(/insert into|the model's answer|params/);
    expect(JSON.stringify(error.cause)).not.toMatch(/insert into|the model's answer|params/);
    expect(JSON.stringify(error)).not.toMatch(/insert into|the model's answer|params/);
    // A reason that quotes such a message as text is cut at the statement.
    expect(safeReason(`tests could not be stored: Failed query: insert into "test_results" values ($1)\nparams: ${secretish}`)).toBe(
      'tests could not be stored: a database statement failed',
    );
  });
});
