/**
 * `/openapi.json` and `/docs`: the document is valid OpenAPI 3.1, lists every route the app
 * registers (so a route added without a description fails here), agrees with the validators and
 * with what the routes answer; the reference page loads only same-origin files; neither needs a token.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import type { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApp } from '../../src/http/app.ts';
import { UNDOCUMENTED } from '../../src/http/openapi.ts';
import {
  actorDetailSchema,
  actorSchema,
  eventPageSchema,
  fileDiffsSchema,
  machinesSchema,
  projectSchema,
  runSchema,
  taskDetailSchema,
  taskSchema,
  usageReportSchema,
} from '../../src/http/openapi-schemas.ts';
import { silentLogger } from '../../src/logger.ts';
import type { MessagesRequest } from '../../src/scripted-model/server.ts';
import { launchBrowser, openPage, serveApp } from '../browser/support.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { moduleWithTest } from '../support/replies.ts';

let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const ok = (req: MessagesRequest) => moduleWithTest(req.taskKey!, 'ok');
type Json = Record<string, unknown>;
interface Operation {
  summary?: string;
  security?: Record<string, string[]>[];
  requestBody?: { content: Record<string, { schema: Json }> };
  responses: Record<string, { $ref?: string; description?: string; content?: Record<string, { schema: Json }> }>;
}
interface Doc {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Json>; securitySchemes: Record<string, Json> };
}

async function documentOf(app: Hono): Promise<Doc> {
  const res = await app.request('/openapi.json');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  return (await res.json()) as Doc;
}

/** Every `METHOD /path` the app answers (middleware registered with `use` left out), in OpenAPI spelling. */
function registeredRoutes(app: Hono): string[] {
  const routes = app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, '{$1}')}`);
  return [...new Set(routes)].sort();
}

function missingFrom(doc: Doc, routes: string[]): string[] {
  return routes.filter((route) => {
    const [method, path] = route.split(' ') as [string, string];
    return !(route in UNDOCUMENTED) && doc.paths[path]?.[method.toLowerCase()] === undefined;
  });
}

/** An app over a test runtime, to read its `routes` (startTestApp keeps its Hono app to itself). */
function appOver(test: TestApp): Hono {
  return createApp({ runtime: test.runtime, bus: test.bus, logger: silentLogger, version: '0.1.0' }).app;
}

describe('/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document of Troupe, at the app’s version, with the bearer scheme', async () => {
    t = await startTestApp(ok);
    const doc = (await t.json<Doc>('GET', '/openapi.json')).body;
    const result = await new Validator().validate(doc as never);
    expect(result.errors, JSON.stringify(result.errors, null, 2)).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: 'Troupe', version: '0.1.0' });
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.components.securitySchemes.accessToken).toMatchObject({ type: 'apiKey', in: 'query', name: 'access_token' });
    // Every /api route needs the token; the SSE routes also take it as ?access_token=.
    for (const [path, item] of Object.entries(doc.paths).filter(([p]) => p.startsWith('/api/'))) {
      for (const [method, op] of Object.entries(item)) {
        const sse = op.responses['200']?.content?.['text/event-stream'] !== undefined;
        expect(op.security, `${method} ${path}`).toEqual(sse ? [{ bearerAuth: [] }, { accessToken: [] }] : [{ bearerAuth: [] }]);
        expect(op.responses['401']?.$ref, `${method} ${path}`).toBe('#/components/responses/Unauthorized');
      }
    }
    for (const path of ['/api/events', '/api/projects/{id}/events', '/api/projects/{id}/inspect']) {
      expect(Object.keys(doc.paths[path]!.get!.responses['200']!.content!), path).toEqual(['text/event-stream']);
    }
    expect(doc.paths['/health']!.get!.security).toEqual([]);
  });

  it('lists every route the app registers, each with a summary and its answers (except the pages, listed in UNDOCUMENTED)', async () => {
    t = await startTestApp(ok);
    const app = appOver(t);
    const doc = await documentOf(app);
    const routes = registeredRoutes(app);
    expect(routes.length).toBeGreaterThan(25);
    expect(missingFrom(doc, routes)).toEqual([]);
    // Only what the app answers is in the document, and what is excluded is really a route.
    const documented = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`));
    expect(documented.filter((r) => !routes.includes(r))).toEqual([]);
    expect(Object.keys(UNDOCUMENTED).filter((r) => !routes.includes(r))).toEqual([]);
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        expect(op.summary, `${method} ${path}`).toBeTruthy();
        const success = Object.entries(op.responses).filter(([status]) => status.startsWith('2'));
        expect(success.length, `${method} ${path}`).toBeGreaterThan(0);
        for (const [status, response] of Object.entries(op.responses).filter(([s]) => !s.startsWith('2'))) {
          expect(response.$ref ?? response.content?.['application/json'], `${method} ${path} ${status}`).toBeTruthy();
        }
      }
    }
  });

  it('the completeness check catches a route added without a description', async () => {
    t = await startTestApp(ok);
    const app = appOver(t);
    // Before the first request (the router is built then): a route with a validator but no describe().
    app.get('/api/projects/:id/extra', (c) => c.json({}));
    const doc = await documentOf(app);
    expect(missingFrom(doc, registeredRoutes(app))).toEqual(['GET /api/projects/{id}/extra']);
  });

  it('describes POST /api/projects with the validator’s schema: a body the document refuses is answered 400', async () => {
    t = await startTestApp(ok);
    const doc = (await t.json<Doc>('GET', '/openapi.json')).body;
    const create = doc.paths['/api/projects']!.post!;
    const schema = create.requestBody!.content['application/json']!.schema as { additionalProperties: boolean; required: string[]; properties: Record<string, Json & { examples?: unknown[] }> };
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required.sort()).toEqual(['name', 'testCommand']);
    expect(schema.properties.name).toMatchObject({ type: 'string', minLength: 1, maxLength: 100 });
    expect((schema.properties.config as { additionalProperties: boolean }).additionalProperties).toBe(false);
    expect(create.responses['201']!.content!['application/json']!.schema).toEqual({ $ref: '#/components/schemas/Project' });

    const valid = { name: 'demo', testCommand: 'node --test' };
    const refused: [string, Json][] = [
      ['an unknown field', { ...valid, colour: 'red' }],
      ['a name over maxLength', { ...valid, name: 'n'.repeat(schema.properties.name!.maxLength as number + 1) }],
      ['an unknown config field', { ...valid, config: { turbo: true } }],
      ...schema.required.map((field): [string, Json] => [`no ${field}`, Object.fromEntries(Object.entries(valid).filter(([k]) => k !== field))]),
    ];
    for (const [what, body] of refused) {
      const res = await t.json<{ error: { code: string } }>('POST', '/api/projects', body);
      expect(res.status, what).toBe(400);
      expect(res.body.error.code, what).toBe('validation_failed');
    }
    // The example the page builds from the fields' examples is accepted.
    const example = Object.fromEntries(Object.entries(schema.properties).flatMap(([k, p]) => (p.examples ? [[k, p.examples[0]]] : [])));
    expect(Object.keys(example)).toEqual(expect.arrayContaining(schema.required));
    const project = await t.json<{ id: string }>('POST', '/api/projects', example);
    expect(project.status).toBe(201);
    const tasks = doc.paths['/api/projects/{id}/tasks']!.post!.requestBody!.content['application/json']!.schema as { examples: Json[] };
    expect((await t.json('POST', `/api/projects/${project.body.id}/tasks`, tasks.examples[0])).status).toBe(201);
  });

  it('describes what the routes answer: each body parses with the schema the document names', async () => {
    t = await startTestApp(ok);
    const doc = (await t.json<Doc>('GET', '/openapi.json')).body;
    const strict = async (schema: z.ZodType, method: string, path: string, status = 200) => {
      const res = await t!.json(method, path);
      expect(res.status, `${method} ${path}`).toBe(status);
      const parsed = schema.safeParse(res.body);
      expect(parsed.error?.issues, `${method} ${path}`).toBeUndefined();
      return res.body;
    };
    const created = await t.json<Json>('POST', '/api/projects', { name: 'demo', testCommand: 'node --test' });
    expect(projectSchema.safeParse(created.body).error?.issues).toBeUndefined();
    const base = `/api/projects/${created.body.id as string}`;
    const added = await t.json<Json>('POST', `${base}/tasks`, { tasks: [{ key: 'a', title: 'Server module', description: '' }] });
    expect(z.strictObject({ tasks: z.array(taskSchema) }).safeParse(added.body).error?.issues).toBeUndefined();
    const started = await t.json<{ run: { id: string } }>('POST', `${base}/start`);
    expect(z.strictObject({ run: runSchema }).safeParse(started.body).error?.issues).toBeUndefined();
    await t.runEnd(created.body.id as string, started.body.run.id);
    await t.runtime.host(created.body.id as string)?.ended;

    await strict(projectSchema, 'GET', base);
    const detail = (await strict(taskDetailSchema, 'GET', `${base}/tasks/a`)) as { testResults: unknown[]; baseline: unknown };
    expect(detail.testResults.length).toBeGreaterThan(0);
    expect(detail.baseline).not.toBeNull();
    await strict(z.strictObject({ runs: z.array(runSchema).min(1) }), 'GET', `${base}/runs`);
    await strict(z.strictObject({ actors: z.array(actorSchema).min(2) }), 'GET', `${base}/actors`);
    await strict(actorDetailSchema, 'GET', `${base}/actors/lead`);
    await strict(usageReportSchema, 'GET', `${base}/usage`);
    await strict(eventPageSchema, 'GET', `${base}/events/log?limit=1000`);
    await strict(fileDiffsSchema, 'GET', `${base}/tasks/a/diff?format=json`);
    await strict(machinesSchema, 'GET', '/api/machines');

    const refs: [string, string, string][] = [
      ['/api/projects/{id}', 'get', 'Project'],
      ['/api/projects/{id}/tasks/{ref}', 'get', 'TaskDetail'],
      ['/api/projects/{id}/actors/{actorId}', 'get', 'ActorDetail'],
      ['/api/projects/{id}/usage', 'get', 'UsageReport'],
    ];
    for (const [path, method, name] of refs) {
      expect(doc.paths[path]![method]!.responses['200']!.content!['application/json']!.schema, path).toEqual({ $ref: `#/components/schemas/${name}` });
    }
    const notFound = await t.json<Json>('GET', '/api/projects/prj_missing');
    expect(notFound.status).toBe(404);
    expect(doc.paths['/api/projects/{id}']!.get!.responses['404']).toEqual({ $ref: '#/components/responses/NotFound' });
  });
});

const CONTENT_TYPES: [RegExp, RegExp][] = [
  [/\.css$/, /^text\/css/],
  [/\.js$/, /^text\/javascript/],
  [/\.png$/, /^image\/png$/],
  [/\.json$/, /^application\/json/],
];

describe('/docs', () => {
  it('is an HTML page whose every src and href is same-origin, answers 200 with its type, and renders /openapi.json', async () => {
    t = await startTestApp(ok);
    const page = await t.request('GET', '/docs');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('data-url="/openapi.json"');
    expect(html).not.toMatch(/<script>|<script [^>]*>[^<]/); // no inline script
    const refs = [...html.matchAll(/\s(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs).toEqual(expect.arrayContaining(['/docs/assets/swagger-ui.css', '/docs/assets/swagger-ui-bundle.js', '/docs/assets/docs-init.js', '/openapi.json']));
    for (const ref of refs) {
      expect(ref, ref).toMatch(/^\/[^/]/);
      const res = await t.request('GET', ref);
      expect(res.status, ref).toBe(200);
      const [, type] = CONTENT_TYPES.find(([ext]) => ext.test(ref))!;
      expect(res.headers.get('content-type'), ref).toMatch(type);
      const body = await res.text();
      expect(body.length, ref).toBeGreaterThan(0);
    }
    // The init script reads the document's address from the page and turns swagger-ui's online validator off.
    const init = await (await t.request('GET', '/docs/assets/docs-init.js')).text();
    expect(init).toContain('root.dataset.url');
    expect(init).toContain('validatorUrl: null');
    expect(init).not.toMatch(/https?:\/\//);
  });

  it('assets are cached and revalidated by ETag; an unknown asset is a 404 with the envelope', async () => {
    t = await startTestApp(ok);
    const res = await t.request('GET', '/docs/assets/swagger-ui-bundle.js');
    expect(res.headers.get('cache-control')).toBe('public, max-age=3600');
    const etag = res.headers.get('etag')!;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await t.request('GET', '/docs/assets/swagger-ui-bundle.js', { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    const missing = await t.json<{ error: { code: string } }>('GET', '/docs/assets/package.json');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('not_found');
    expect((await t.request('GET', '/docs/assets/..%2Fpackage.json')).status).toBe(404);
  });
});

describe('/docs in a browser', () => {
  it('swagger-ui renders every operation of the document, with no request leaving the service and no script error', async () => {
    t = await startTestApp(ok);
    const [served, browser] = await Promise.all([serveApp(t), launchBrowser()]);
    const recorded = await openPage(browser);
    try {
      const doc = (await t.json<Doc>('GET', '/openapi.json')).body;
      const operations = Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).length, 0);
      await recorded.page.goto(`${served.origin}/docs`);
      const rendered = recorded.page.locator('.opblock-summary-path');
      await rendered.nth(operations - 1).waitFor();
      expect(await rendered.count()).toBe(operations);
      expect(await recorded.page.locator('.info .title').innerText()).toContain('Troupe');
      expect(recorded.errors).toEqual([]);
      expect(recorded.requests).toContain(`${served.origin}/openapi.json`);
      expect(recorded.requests.filter((u) => !u.startsWith(`${served.origin}/`))).toEqual([]);
    } finally {
      await recorded.close();
      await browser.close();
      await served.close();
    }
  });
});

describe('with an API token', () => {
  it('the document and the page need none (they hold no data); the API still does', async () => {
    t = await startTestApp(ok, { apiToken: 'x' });
    for (const path of ['/openapi.json', '/docs', '/docs/assets/docs-init.js', '/docs/assets/swagger-ui.css']) {
      expect((await t.request('GET', path)).status, path).toBe(200);
    }
    expect((await t.request('GET', '/api/projects')).status).toBe(401);
    expect((await t.request('GET', '/api/projects', { headers: { authorization: 'Bearer x' } })).status).toBe(200);
  });

  it('without a token, the Host check holds for them as for every route', async () => {
    t = await startTestApp(ok);
    for (const path of ['/openapi.json', '/docs']) {
      const res = await t.json<{ error: { code: string } }>('GET', path, undefined, { host: 'evil.example' });
      expect(res.status, path).toBe(403);
      expect(res.body.error.code).toBe('forbidden_host');
    }
  });
});
