/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core) against the real
 * service listening on loopback, with the scripted Messages API answering and real git and
 * `node --test` runs. What a person would check: the create form shows the API's validation on
 * the field it names; the DAG shows every task and follows the run live; a task's panel shows its
 * diff and the timeline of its attempts (each with its own diff, the base tree's failing tests on
 * top); pause and approve from the page do what the API says they did; each actor's statechart
 * lights the state the API reports, live; the time-travel slider shows the run as it was; the event
 * log lists what happened, with no gap across a reconnect; a review brings a notice; with a token
 * the page asks for it once per tab and then works; and no request ever leaves the service's origin.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MessagesRequest, Reply } from '../../src/scripted-model/server.ts';
import { deferred, type Deferred } from '../support/deferred.ts';
import { moduleWithTest, writeFiles } from '../support/replies.ts';
import { startTestRuntime, type TestRuntime } from '../support/runtime.ts';
import { ARTIFACTS, ensureDashboardBuilt, launchBrowser, openPage, screenshot, serveApp, type RecordedPage, type Served } from './support.ts';

const TOKEN = 'dashboard-test-token';
const GUIDANCE = 'Return the string "right".';
const REJECT_GUIDANCE = 'Leave package.json alone; write a node:test test instead.';

let twiceAsked = 0;

/** Answers held until the test lets each task's first attempt go (`gates`); others answer at once. */
const gates = new Map<string, Deferred<void>>();
const gate = (key: string) => {
  let g = gates.get(key);
  if (!g) gates.set(key, (g = deferred()));
  return g;
};
async function respond(req: MessagesRequest): Promise<Reply> {
  const key = req.taskKey ?? 'none';
  if (key === 'calc') {
    // Rewrites the test script: a protected file, so the change waits for review.
    return writeFiles({ 'lib/calc.js': 'exports.answer = () => 1;\n', 'package.json': JSON.stringify({ name: 'calc', scripts: { test: 'exit 0' } }, null, 2) });
  }
  if (key === 'reviewed') {
    // Rewrites the test script (review) until a reviewer's guidance says not to.
    if (req.text.includes(REJECT_GUIDANCE)) return moduleWithTest('reviewed', 'ok');
    return writeFiles({ 'lib/reviewed.js': 'exports.value = () => "ok";\n', 'package.json': JSON.stringify({ name: 'reviewed', scripts: { test: 'exit 0' } }, null, 2) });
  }
  if (key === 'flaky') {
    // Fails its own test until a person's guidance arrives.
    return req.text.includes(GUIDANCE) ? moduleWithTest('flaky', 'right') : moduleWithTest('flaky', 'wrong', 'right');
  }
  if (key === 'twice') {
    // The first answer fails its own test; the correction passes.
    twiceAsked++;
    return moduleWithTest('twice', twiceAsked === 1 ? 'wrong' : 'right', 'right');
  }
  if (key.startsWith('held-')) await gate(key).promise;
  return moduleWithTest(key.replace(/^held-/, ''), `value of ${key}`);
}

let t: TestRuntime;
let plain: Served;
let guarded: Served;
let browser: Browser;
const dirs: string[] = [];
const pages: RecordedPage[] = [];

beforeAll(async () => {
  await ensureDashboardBuilt();
  [t, browser] = await Promise.all([startTestRuntime(respond), launchBrowser()]);
  plain = await serveApp(t);
  guarded = await serveApp(t, { apiToken: TOKEN });
});

afterEach(async () => {
  if (plain) plain.intercept = null;
  if (guarded) guarded.intercept = null;
  for (const p of pages.splice(0)) {
    await p.close();
    // Nothing the page asked for left the service (no CDN, no fonts, no telemetry).
    const origin = p.page.url().replace(/^(https?:\/\/[^/]+).*$/, '$1');
    expect(p.requests.length).toBeGreaterThan(0);
    expect(p.requests.filter((u) => !u.startsWith(`${origin}/`))).toEqual([]);
    expect(p.errors).toEqual([]);
  }
});

afterAll(async () => {
  for (const g of gates.values()) g.resolve();
  await browser?.close();
  await plain?.close();
  await guarded?.close();
  await t?.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function page(): Promise<Page> {
  const p = await openPage(browser);
  pages.push(p);
  return p.page;
}

/** A git workspace with one commit. */
async function workspace(files: Record<string, string> = { 'README.md': 'demo\n' }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'troupe-dash-'));
  dirs.push(dir);
  for (const [p, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, p)), { recursive: true });
    await writeFile(path.join(dir, p), content);
  }
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: dir });
  git('init', '-q', '-b', 'main');
  git('add', '-A');
  git('commit', '-q', '-m', 'base');
  return dir;
}

async function api<T = Record<string, unknown>>(method: string, p: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${plain.origin}${p}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as T };
}

/** Polls until the page (or the API) shows what a person waits for; generous for a busy 2-core machine. */
const poll = <T>(fn: () => T | Promise<T>, opts: { timeout?: number } = {}) => expect.poll(fn, { timeout: 20_000, interval: 50, ...opts });
const config = { maxCorrectionAttempts: 1, sandbox: { mode: 'none' } };
const node = (p: Page, key: string) => p.locator(`[data-task="${key}"]`);
const statusOf = (p: Page, key: string) => () => node(p, key).getAttribute('data-status');
const runStatus = async (id: string) => (await api<{ runs: { status: string }[] }>('GET', `/api/projects/${id}/runs`)).body.runs[0]?.status;
const taskStatus = async (id: string, key: string) => (await api<{ status: string }>('GET', `/api/projects/${id}/tasks/${key}`)).body.status;
const actorsOf = async (id: string) => (await api<{ actors: { id: string; kind: string; machine: string; state: unknown }[] }>('GET', `/api/projects/${id}/actors`)).body.actors;
const logOf = async (id: string) => (await api<{ events: { seq: number; type: string; data: Record<string, unknown> }[] }>('GET', `/api/projects/${id}/events/log?since=0&limit=1000`)).body.events;

/** The innermost state ids a snapshot value is in, as the statechart names them: `lead.active.schedule.running`. */
function leaves(prefix: string, value: unknown): string[] {
  if (typeof value === 'string') return [`${prefix}.${value}`];
  if (!value || typeof value !== 'object') return [];
  return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => leaves(`${prefix}.${k}`, v)).sort();
}
/** An element as `evaluateAll` hands it over (the Node typecheck has no DOM lib). */
type Attributed = { getAttribute(name: string): string | null };
/** The lead's state without its bookkeeping `writer` region (as the events report it, and the page lights it). */
function reported(value: unknown): unknown {
  const active = (value as { active?: { schedule?: unknown } } | null)?.active;
  return active && typeof active === 'object' ? { active: { schedule: active.schedule } } : value;
}
/** The states an actor's statechart highlights as current. */
const lit = (p: Page, actor: string) => async () =>
  (await p.locator(`[data-actor="${actor}"] .sc-state.current`).evaluateAll((els: Attributed[]) => els.map((e) => e.getAttribute('data-state') ?? ''))).sort();
/** Moves the time-travel slider to the event at `index` of the log, as dragging it would. */
const travelTo = (p: Page, index: number) =>
  p.getByLabel('time travel').evaluate((el, i) => {
    const input = el as unknown as { value: string; dispatchEvent(e: Event): boolean };
    input.value = String(i);
    input.dispatchEvent(new Event('input', { bubbles: true }));
  }, index);

describe('the web dashboard', () => {
  it('serves the page and its hashed assets from the service, with a same-origin CSP', async () => {
    const index = await fetch(`${plain.origin}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toContain('text/html');
    expect(index.headers.get('cache-control')).toBe('no-cache');
    expect(index.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await index.text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)![1]!;
    const asset = await fetch(`${plain.origin}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toContain('text/javascript');
    expect(asset.headers.get('cache-control')).toContain('immutable');
    expect(asset.headers.get('content-encoding')).toBe('gzip');
    expect(await asset.text()).toContain('createElement');
    expect((await fetch(`${plain.origin}/assets/..%2Fpackage.json`)).status).toBe(404);
    expect((await fetch(`${plain.origin}/assets/nope.js`)).status).toBe(404);
  });

  it('creates a project from the form, showing the API validation on the field it names, and lists it', async () => {
    const p = await page();
    await p.goto(`${plain.origin}/`);
    await p.getByRole('heading', { name: /Projects/ }).waitFor();

    await p.getByLabel('Name').fill('');
    await p.getByLabel('Config JSON (optional)').fill('{"maxConcurrency": 99}');
    await p.getByRole('button', { name: 'Create project' }).click();
    await poll(() => p.locator('[data-field="name"]').textContent()).not.toBe('');
    await poll(() => p.locator('[data-field="config"]').textContent()).toContain('config.maxConcurrency');
    expect(await p.locator('[data-field="testCommand"]').textContent()).toBe('');

    const ws = await workspace();
    await p.getByLabel('Name').fill('from-the-form');
    await p.getByLabel('Test command').fill('node --test');
    await p.getByLabel('Workspace (optional)').fill(ws);
    await p.getByLabel('Config JSON (optional)').fill(JSON.stringify(config));
    await p.getByRole('button', { name: 'Create project' }).click();
    const row = p.locator('tr[data-project="from-the-form"]');
    await row.waitFor();
    expect(await row.textContent()).toContain('idle');
    expect(await p.locator('.field-msg').allTextContents()).toEqual(['', '', '', '']);
    await screenshot(p, 'dashboard-projects');
  });

  it('follows a run live on the DAG, shows a task’s diff, and pauses and resumes from the page', async () => {
    const created = await api<{ id: string }>('POST', '/api/projects', { name: 'live-run', testCommand: 'node --test', workspace: await workspace(), config: { ...config, budgetUsd: 5 } });
    const id = created.body.id;
    const tasks = [
      { key: 'held-a', title: 'Module a', description: 'Write lib/a.js' },
      { key: 'held-b', title: 'Module b', description: 'Write lib/b.js', dependsOn: ['held-a'] },
      { key: 'held-c', title: 'Module c', description: 'Write lib/c.js', dependsOn: ['held-a'] },
      { key: 'd', title: 'Module d', description: 'Write lib/d.js', dependsOn: ['held-b'] },
    ];
    expect((await api('POST', `/api/projects/${id}/tasks`, { tasks })).status).toBe(201);

    const p = await page();
    await p.goto(`${plain.origin}/#/p/${id}`);
    for (const { key } of tasks) await poll(statusOf(p, key)).toBe('pending');
    await p.locator('.live-live').waitFor();

    await p.getByRole('button', { name: 'Start' }).click();
    await poll(statusOf(p, 'held-a')).toBe('in_progress');
    await node(p, 'held-a').locator('.spinner').waitFor();
    expect(await statusOf(p, 'held-b')()).toBe('pending');
    await screenshot(p, 'dashboard-run');

    gate('held-a').resolve();
    await poll(statusOf(p, 'held-a')).toBe('completed');
    await poll(statusOf(p, 'held-b')).toBe('in_progress');
    await poll(statusOf(p, 'held-c')).toBe('in_progress');
    expect(await node(p, 'held-a').locator('.spinner').count()).toBe(0);

    // Pause while b and c are in flight: the run is pausing until they are done, then paused, and d waits.
    await p.getByRole('button', { name: 'Pause' }).click();
    await poll(() => p.getByTestId('run-status').textContent()).toBe('pausing');
    await poll(() => runStatus(id)).toBe('pausing');
    gate('held-b').resolve();
    gate('held-c').resolve();
    await poll(() => p.getByTestId('run-status').textContent()).toBe('paused');
    await poll(() => runStatus(id)).toBe('paused');
    expect(await statusOf(p, 'd')()).toBe('pending');

    await p.getByRole('button', { name: 'Resume' }).click();
    await poll(statusOf(p, 'd')).toBe('completed');
    await poll(() => p.getByTestId('run-status').textContent()).toBe('completed');
    expect(await runStatus(id)).toBe('completed');
    // The budget meter: what the usage route says was spent, against config.budgetUsd.
    const spent = (await api<{ totals: { costUsd: number } }>('GET', `/api/projects/${id}/usage`)).body.totals.costUsd;
    expect(spent).toBeGreaterThan(0);
    await poll(() => p.locator('.budget').textContent()).toBe(`$${spent.toFixed(4)} of $5.00`);
    expect(Number(await p.getByRole('meter', { name: 'budget' }).getAttribute('aria-valuenow'))).toBe(spent);

    // The task's panel: its status, attempts, the diff it made (added lines marked) and its test run.
    await node(p, 'held-a').click();
    const panel = p.getByRole('complementary', { name: 'task held-a' });
    await panel.getByTestId('diff').waitFor();
    expect(await panel.getByTestId('task-status').textContent()).toBe('completed');
    expect(await panel.getByTestId('diff').textContent()).toContain('+++ b/lib/a.js');
    expect(await panel.locator('.d-add', { hasText: 'exports.value' }).count()).toBe(1);
    expect(await panel.locator('.test').textContent()).toMatch(/passed/);
    await screenshot(p, 'dashboard-task');
  });

  it('a task corrected once: its timeline shows both attempts with their test results and tokens, and attempt 1’s own diff', async () => {
    const created = await api<{ id: string }>('POST', '/api/projects', { name: 'timeline', testCommand: 'node --test', workspace: await workspace(), config });
    const id = created.body.id;
    expect((await api('POST', `/api/projects/${id}/tasks`, { tasks: [{ key: 'twice', title: 'Twice', description: 'Write lib/twice.js' }] })).status).toBe(201);
    expect((await api('POST', `/api/projects/${id}/start`)).status).toBe(202);
    await poll(() => runStatus(id)).toBe('completed');
    const calls = (await logOf(id)).filter((e) => e.type === 'llm.usage').map((e) => e.data as { inputTokens: number; outputTokens: number });
    expect(calls).toHaveLength(2);
    const detail = (await api<{ commit: string; attempts: number }>('GET', `/api/projects/${id}/tasks/twice`)).body;
    expect(detail.attempts).toBe(2);

    const p = await page();
    await p.goto(`${plain.origin}/#/p/${id}/t/twice`);
    const panel = p.getByRole('complementary', { name: 'task twice' });
    const rows = panel.locator('.attempt');
    await poll(() => rows.count()).toBe(2);
    const [one, two] = [rows.nth(0), rows.nth(1)];
    expect([await one.getAttribute('data-attempt'), await two.getAttribute('data-attempt')]).toEqual(['1', '2']);
    // Each attempt's test run (with the failing test named) and its model call's tokens.
    await poll(() => one.getByTestId('test-result').textContent()).toMatch(/^Tests: failed · 0 passed, 1 failed of 1/);
    expect(await one.locator('.tl-failures').textContent()).toContain('twice returns its value');
    expect(await two.getByTestId('test-result').textContent()).toMatch(/^Tests: passed · 1 passed, 0 failed of 1/);
    const said = (c: { inputTokens: number; outputTokens: number }) => `${c.inputTokens.toLocaleString('en')} in, ${c.outputTokens.toLocaleString('en')} out`;
    expect(await one.getByTestId('model-call').textContent()).toContain(said(calls[0]!));
    expect(await two.getByTestId('model-call').textContent()).toContain(said(calls[1]!));
    // The correction between them, and the commit at the end.
    expect(await two.locator('.tl-correction').textContent()).toMatch(/^Correction 1 of 1 \(succeeded\), after: tests failed/);
    expect(await one.locator('.tl-correction').count()).toBe(0);
    expect(await two.locator('.tl-commit').textContent()).toContain(detail.commit.slice(0, 10));

    // Attempt 1's own diff: the line it wrote, which the task's whole diff no longer has.
    await one.getByRole('button', { name: 'Show the diff of attempt 1' }).click();
    await one.getByTestId('attempt-diff').waitFor();
    expect(await one.locator('.d-add', { hasText: 'exports.value = () => "wrong";' }).count()).toBe(1);
    expect(await one.locator('.d-add', { hasText: 'exports.value = () => "right";' }).count()).toBe(0);
    expect(await panel.getByTestId('diff').locator('.d-add', { hasText: 'exports.value = () => "right";' }).count()).toBe(1);
    expect(await panel.getByTestId('diff').textContent()).not.toContain('"wrong"');
    await screenshot(p, 'dashboard-timeline');
    // The timeline is the run view's log, not read again; the attempt's diff was asked for by number.
    const requests = pages.at(-1)!.requests.map((u) => new URL(u));
    expect(requests.filter((u) => u.pathname.endsWith('/events/log'))).toHaveLength(1);
    expect(requests.filter((u) => u.pathname.endsWith('/tasks/twice/diff') && u.searchParams.get('attempt') === '1')).toHaveLength(1);
  });

  it('a task judged against a base tree with a failing test names that test once, at the top of its timeline', async () => {
    const old = "const test = require('node:test');\nconst assert = require('node:assert');\ntest('old fails', () => assert.fail('broken before'));\n";
    const created = await api<{ id: string }>('POST', '/api/projects', { name: 'baseline', testCommand: 'node --test', workspace: await workspace({ 'test/old.test.js': old }), config });
    const id = created.body.id;
    expect((await api('POST', `/api/projects/${id}/tasks`, { tasks: [{ key: 'legacy', title: 'Legacy', description: 'Write lib/legacy.js' }] })).status).toBe(201);
    expect((await api('POST', `/api/projects/${id}/start`)).status).toBe(202);
    await poll(() => runStatus(id)).toBe('completed');
    const { baseline } = (await api<{ baseline: { failing: string[] } }>('GET', `/api/projects/${id}/tasks/legacy`)).body;
    expect(baseline.failing).toEqual(['old fails']);

    const p = await page();
    await p.goto(`${plain.origin}/#/p/${id}/t/legacy`);
    const panel = p.getByRole('complementary', { name: 'task legacy' });
    await poll(() => panel.getByTestId('baseline').textContent()).toMatch(/^Before any change, 1 test\(s\) were already failing on the base tree \([0-9a-f]{10}\): old fails\./);
    expect(await panel.getByTestId('baseline').count()).toBe(1);
    expect(await panel.locator('.attempt').count()).toBe(1);
    expect(await panel.getByTestId('test-result').textContent()).toContain('not verified');
  });

  it('shows "reconnecting" while the stream is down and catches up from Last-Event-ID once it is back', async () => {
    const created = await api<{ id: string }>('POST', '/api/projects', { name: 'reconnect', testCommand: 'node --test', workspace: await workspace(), config });
    const id = created.body.id;
    expect((await api('POST', `/api/projects/${id}/tasks`, { tasks: [{ key: 'held-e', title: 'Module e', description: 'Write lib/e.js' }] })).status).toBe(201);
    const p = await page();
    await p.goto(`${plain.origin}/#/p/${id}`);
    await p.locator('.live-live').first().waitFor();
    expect((await api('POST', `/api/projects/${id}/start`)).status).toBe(202);
    await poll(statusOf(p, 'held-e')).toBe('in_progress');

    // The next connection to the stream is held (at the server) until the test lets it through.
    const held = deferred();
    const reconnects: (string | null)[] = [];
    plain.intercept = async (req) => {
      if (!new URL(req.url).pathname.endsWith(`/${id}/events`)) return;
      reconnects.push(req.headers.get('last-event-id'));
      await held.promise;
    };
    plain.closeStreams();
    await p.locator('.live-reconnecting').waitFor();
    // The events view says so too.
    await p.getByRole('tab', { name: /^Events/ }).click();
    await p.locator('.events .live-reconnecting').waitFor();

    gate('held-e').resolve();
    await poll(() => taskStatus(id, 'held-e')).toBe('completed');
    await poll(() => reconnects.length).toBe(1);
    // Still disconnected while the reconnect is held. (What the page shows of the task meanwhile is
    // not asserted: a reload scheduled by an event from before the drop may read it over REST.)
    expect(await p.locator('.events .live-reconnecting').count()).toBe(1);

    held.resolve();
    plain.intercept = null;
    await p.locator('.events .live-live').waitFor();
    // The browser resumed after the last event it had seen, not from the start, and the log on the
    // page is the service's, every event once, none missing from the time it was down.
    expect(Number(reconnects[0])).toBeGreaterThan(0);
    await poll(() => runStatus(id)).toBe('completed');
    const logged = (await logOf(id)).map((e) => e.seq);
    await poll(() => p.locator('.event').evaluateAll((els: Attributed[]) => els.map((e) => Number(e.getAttribute('data-seq'))))).toEqual(logged);
    await p.getByRole('tab', { name: 'Tasks' }).click();
    await poll(statusOf(p, 'held-e')).toBe('completed');
  });

  it('a task in review says why, shows the change, and approving it from the page completes it', async () => {
    const created = await api<{ id: string }>('POST', '/api/projects', { name: 'review', testCommand: 'node --test', workspace: await workspace(), config });
    const id = created.body.id;
    expect((await api('POST', `/api/projects/${id}/tasks`, { tasks: [{ key: 'calc', title: 'Calc', description: 'Write lib/calc.js' }] })).status).toBe(201);

    const p = await page();
    await p.goto(`${plain.origin}/#/p/${id}/t/calc`);
    await p.getByRole('button', { name: 'Start' }).click();
    await poll(statusOf(p, 'calc')).toBe('review');
    // A notice says a person is needed, without opening anything.
    await poll(() => p.locator('.notice-review span').textContent()).toBe('Task calc is waiting for review because it changes protected files: package.json.');
    const panel = p.getByRole('complementary', { name: 'task calc' });
    await poll(() => panel.locator('.reason').textContent()).toBe('waiting for review because it changes protected files: package.json');
    await poll(() => panel.getByTestId('diff').textContent()).toContain('diff --git a/package.json b/package.json');
    await poll(() => p.locator('.summary').textContent()).toContain('waiting for review');
    await screenshot(p, 'dashboard-review');
    await p.locator('.notices').screenshot({ path: path.join(ARTIFACTS, 'dashboard-notice.png') });

    await panel.getByRole('button', { name: 'Approve' }).click();
    await poll(statusOf(p, 'calc')).toBe('completed');
    expect(await taskStatus(id, 'calc')).toBe('completed');
    await poll(() => p.getByTestId('run-status').textContent()).toBe('completed');
  });

  it('a task in review rejected with guidance from the page: its change is undone, the correction gets the guidance and completes', async () => {
    const ws = await workspace();
    const created = await api<{ id: string }>('POST', '/api/projects', { name: 'reject', testCommand: 'node --test', workspace: ws, config });
    const id = created.body.id;
    expect((await api('POST', `/api/projects/${id}/tasks`, { tasks: [{ key: 'reviewed', title: 'Reviewed', description: 'Write lib/reviewed.js' }] })).status).toBe(201);

    const p = await page();
    await p.goto(`${plain.origin}/#/p/${id}/t/reviewed`);
    await p.getByRole('button', { name: 'Start' }).click();
    await poll(statusOf(p, 'reviewed')).toBe('review');
    const panel = p.getByRole('complementary', { name: 'task reviewed' });
    // What would land, read before deciding.
    await poll(() => panel.getByTestId('diff').textContent()).toContain('"test": "exit 0"');
    await panel.getByLabel('Guidance for a correction (reject)').fill(REJECT_GUIDANCE);
    await panel.getByRole('button', { name: 'Reject' }).click();
    await poll(statusOf(p, 'reviewed')).toBe('completed');
    expect(await taskStatus(id, 'reviewed')).toBe('completed');
    expect(t.model.requests.filter((r) => r.taskKey === 'reviewed').at(-1)!.text).toContain(REJECT_GUIDANCE);
    // The rejected change never landed.
    const landed = execFileSync('git', ['ls-tree', '-r', '--name-only', 'HEAD'], { cwd: ws, encoding: 'utf8' });
    expect(landed).toContain('lib/reviewed.js');
    expect(landed).not.toContain('package.json');
  });

  it('a blocked task says why in words, and a retry with guidance from its panel completes it', async () => {
    const created = await api<{ id: string }>('POST', '/api/projects', { name: 'retry', testCommand: 'node --test', workspace: await workspace(), config });
    const id = created.body.id;
    expect((await api('POST', `/api/projects/${id}/tasks`, { tasks: [{ key: 'flaky', title: 'Flaky', description: 'Write lib/flaky.js' }] })).status).toBe(201);
    const p = await page();
    // Desktop notifications allowed for this origin; the page's calls are recorded.
    await p.context().grantPermissions(['notifications'], { origin: plain.origin });
    await p.addInitScript(`(() => {
      const Real = window.Notification;
      window.__notified = [];
      function Recorded(title, options) { window.__notified.push({ title, body: options && options.body }); }
      Object.defineProperty(Recorded, 'permission', { get: () => Real.permission });
      Recorded.requestPermission = () => Real.requestPermission();
      window.Notification = Recorded;
    })()`);
    await p.goto(`${plain.origin}/#/p/${id}/t/flaky`);
    await p.getByRole('button', { name: 'Start' }).click();
    await poll(statusOf(p, 'flaky')).toBe('blocked');
    // The run is blocked: a notice in the page and a desktop notification, no permission to ask for.
    await poll(() => p.locator('.notice-blocked span').textContent()).toMatch(/^The run is blocked: .+/);
    await poll(() => p.evaluate('window.__notified')).toEqual([{ title: 'Troupe: run blocked', body: await p.locator('.notice-blocked span').textContent() }]);
    expect(await p.locator('.notify-ask').count()).toBe(0);
    const panel = p.getByRole('complementary', { name: 'task flaky' });
    await poll(() => panel.locator('.reason').textContent()).toContain('every correction attempt failed the tests');
    await poll(() => panel.locator('.test').textContent()).toContain('failed');

    await panel.getByLabel('Guidance for the retry (optional)').fill(GUIDANCE);
    await panel.getByRole('button', { name: /^Retry/ }).click();
    await poll(statusOf(p, 'flaky')).toBe('completed');
    expect(await taskStatus(id, 'flaky')).toBe('completed');
    expect(t.model.requests.filter((r) => r.taskKey === 'flaky').at(-1)!.text).toContain(GUIDANCE);
  });

  it('draws each actor’s statechart with the state the API reports lit, moving live as the worker works', async () => {
    const created = await api<{ id: string }>('POST', '/api/projects', { name: 'agents', testCommand: 'node --test', workspace: await workspace(), config });
    const id = created.body.id;
    expect((await api('POST', `/api/projects/${id}/tasks`, { tasks: [{ key: 'held-w', title: 'Module w', description: 'Write lib/w.js' }] })).status).toBe(201);
    const p = await page();
    await p.goto(`${plain.origin}/#/p/${id}`);
    await p.locator('.live-live').waitFor();
    await p.getByRole('tab', { name: /^Agents/ }).click();
    expect((await api('POST', `/api/projects/${id}/start`)).status).toBe(202);

    // The worker is held answering its task (generating): the page lights what the API says.
    await poll(async () => (await actorsOf(id)).find((a) => a.kind === 'worker')?.state).toBe('generating');
    const worker = (await actorsOf(id)).find((a) => a.kind === 'worker')!;
    await poll(lit(p, worker.id)).toEqual([`${worker.machine}.working.generating`]);
    const lead = (await actorsOf(id)).find((a) => a.kind === 'lead')!;
    await poll(lit(p, 'lead')).toEqual(leaves('lead', reported(lead.state)));
    // Nested boxes: the lead's parallel state holds its regions, drawn dashed.
    expect(await p.locator('[data-actor="lead"] .sc-region').count()).toBeGreaterThan(0);
    expect(await p.locator('[data-actor="lead"] .sc-edge-label').count()).toBeGreaterThan(5);
    await screenshot(p, 'dashboard-agents');
    // The README's picture of the dashboard (docs/dashboard.png), made again on request only.
    if (process.env.UPDATE_DOCS_SCREENSHOT) await p.screenshot({ path: path.join(ARTIFACTS, '../docs/dashboard.png') });

    // Let it go: the highlight follows the stream to where the API says each actor ended.
    gate('held-w').resolve();
    await poll(() => runStatus(id)).toBe('completed');
    const after = await actorsOf(id);
    const w = after.find((a) => a.id === worker.id)!;
    expect(w.state).not.toBe('generating');
    // A worker's state is reported by name; its working states are drawn inside `working`.
    await poll(lit(p, worker.id)).toEqual(leaves(w.machine, w.state === 'idle' || w.state === 'releasing' ? w.state : { working: w.state }));
    await poll(lit(p, 'lead')).toEqual(leaves('lead', reported(after.find((a) => a.kind === 'lead')!.state)));
  });

  it('travels back over a finished run’s events: the DAG and the statecharts as they were, then live again; the log lists run.completed', async () => {
    const created = await api<{ id: string }>('POST', '/api/projects', { name: 'travel', testCommand: 'node --test', workspace: await workspace(), config });
    const id = created.body.id;
    const tasks = [
      { key: 'first', title: 'First', description: 'Write lib/first.js' },
      { key: 'second', title: 'Second', description: 'Write lib/second.js', dependsOn: ['first'] },
    ];
    expect((await api('POST', `/api/projects/${id}/tasks`, { tasks })).status).toBe(201);
    expect((await api('POST', `/api/projects/${id}/start`)).status).toBe(202);
    await poll(() => runStatus(id)).toBe('completed');
    const log = await logOf(id);

    const p = await page();
    await p.goto(`${plain.origin}/#/p/${id}`);
    await poll(statusOf(p, 'second')).toBe('completed');
    await poll(() => p.getByTestId('travel-at').textContent()).toContain(`of ${log.length}`);

    // Right after the run started, nothing had run yet.
    const started = log.findIndex((e) => e.type === 'run.started');
    expect(started).toBeGreaterThan(0);
    await travelTo(p, started);
    await poll(statusOf(p, 'first')).toBe('pending');
    expect(await statusOf(p, 'second')()).toBe('pending');
    await poll(() => p.locator('.travel-note').textContent()).toContain(`after event #${log[started]!.seq}`);
    // While `first` was being worked on: in progress, `second` still waiting.
    const working = log.findIndex((e) => e.type === 'task.status_changed' && e.data.key === 'first' && e.data.to === 'in_progress');
    await travelTo(p, working);
    await poll(statusOf(p, 'first')).toBe('in_progress');
    expect(await statusOf(p, 'second')()).toBe('pending');
    await screenshot(p, 'dashboard-time-travel');

    // The statecharts at that moment: the lead as its last agent.state_changed before then said.
    const leadThen = log.slice(0, working + 1).filter((e) => e.type === 'agent.state_changed' && e.data.agentId === 'lead').at(-1)!.data.state;
    await p.getByRole('tab', { name: /^Agents/ }).click();
    await poll(lit(p, 'lead')).toEqual(leaves('lead', reported(leadThen)));

    // Play steps through to the end (from three events before it); live shows the run as it is.
    await travelTo(p, log.length - 4);
    await poll(() => p.getByTestId('travel-at').textContent()).toContain(`event ${log.length - 3} of`);
    await p.getByRole('button', { name: 'Play' }).click();
    await poll(() => p.getByTestId('travel-at').textContent(), { timeout: 30_000 }).toContain(`event ${log.length} of ${log.length}`);
    expect(await p.getByRole('button', { name: 'Play' }).count()).toBe(1);
    await p.getByRole('button', { name: 'Live' }).click();
    await poll(() => p.locator('.travel-note').count()).toBe(0);
    const lead = (await actorsOf(id)).find((a) => a.kind === 'lead')!;
    await poll(lit(p, 'lead')).toEqual(leaves('lead', reported(lead.state)));
    await p.getByRole('tab', { name: 'Tasks' }).click();
    await poll(statusOf(p, 'first')).toBe('completed');

    // The event log: run.completed at the bottom; a type filter hides what it names.
    await p.getByRole('tab', { name: /^Events/ }).click();
    await poll(() => p.locator('.event').last().getAttribute('data-type')).toBe(log.at(-1)!.type);
    expect(await p.locator('.event[data-type="run.completed"]').count()).toBe(1);
    const progress = await p.locator('.event[data-type="progress"]').count();
    expect(progress).toBeGreaterThan(0);
    await p.getByRole('checkbox', { name: 'progress' }).uncheck();
    await poll(() => p.locator('.event[data-type="progress"]').count()).toBe(0);
    expect(await p.locator('.event').count()).toBe(log.length - progress);
    await p.getByRole('checkbox', { name: 'progress' }).check();
    await screenshot(p, 'dashboard-events');
  });

  it('with a token, asks for it once per tab, then lists the projects and follows the stream', async () => {
    const p = await page();
    await p.goto(`${guarded.origin}/#/`);
    await p.getByText('This service needs its API token').waitFor();
    await p.getByLabel('API token').fill('wrong');
    await p.getByRole('button', { name: 'Continue' }).click();
    await p.getByText('The token was refused').waitFor();
    await screenshot(p, 'dashboard-token');
    await p.getByLabel('API token').fill(TOKEN);
    await p.getByRole('button', { name: 'Continue' }).click();
    await p.locator('tr[data-project="live-run"]').waitFor();

    // Same tab, new page load: the token is remembered, nothing is asked.
    await p.reload();
    await p.locator('tr[data-project="live-run"] a').click();
    await node(p, 'd').waitFor();
    await p.locator('.live-live').waitFor();
    expect(await p.getByLabel('API token').count()).toBe(0);

    // The token changes under the page (a restart with a new one): the stream is refused, which
    // EventSource cannot see, so the page asks the API, learns the token is refused, and asks again.
    await p.evaluate("sessionStorage.setItem('troupe.apiToken', 'rotated-away')");
    guarded.intercept = (req) => (new URL(req.url).pathname.endsWith('/events') ? Response.json({ error: { code: 'unauthorized', message: 'invalid bearer token' } }, { status: 401 }) : undefined);
    guarded.closeStreams();
    await p.getByText('The token was refused').waitFor();
    guarded.intercept = null;
    await p.getByLabel('API token').fill(TOKEN);
    await p.getByRole('button', { name: 'Continue' }).click();
    await node(p, 'd').waitFor();
    await p.locator('.live-live').waitFor();
  });
});
