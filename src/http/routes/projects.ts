/**
 * Projects, tasks, runs, actors and usage (the README's "HTTP API"). Handlers validate, call the runtime
 * (which persists or sends an event to a lead) and return: they never wait for agent work.
 * `docs` is each route's entry in `/openapi.json` (what it answers; what it takes comes from its
 * validators).
 */
import { Hono } from 'hono';
import { z } from 'zod';
import type { Runtime } from '../../actors/runtime/runtime.ts';
import { addTasksSchema, createProjectSchema, patchProjectSchema, retrySchema } from '../../domain/inputs.ts';
import { actorDetailSchema, actorSchema, describe, fileDiffsSchema, json, projectSchema, runSchema, taskDetailSchema, taskSchema, textBody, usageReportSchema, type RouteDoc } from '../openapi-schemas.ts';
import { optionalJson, requireJson, valid } from '../validate.ts';

const idParam = z.object({ id: z.string().min(1).max(100) });
const taskParam = idParam.extend({ ref: z.string().min(1).max(100) });
const diffQuery = z.strictObject({
  attempt: z.coerce.number().int().min(1).max(1000).optional(),
  format: z.enum(['json', 'diff']).optional(),
});

const CONTROL = 'Sent to a process that does not own the run, it is carried to the owner and answered as the owner answers it.';
const one = (description: string, schema: z.ZodType) => ({ description, content: json(schema) });
const list = (key: string, schema: z.ZodType, description: string) => one(description, z.strictObject({ [key]: z.array(schema) }));
const run = one('The run', z.strictObject({ run: runSchema }));
const task = (description: string) => ({ 202: one(description, taskSchema) });
const guidance = { schema: retrySchema, required: false };

const docs = {
  create: { tag: 'projects', summary: 'Create a project', ok: { 201: one('The project', projectSchema) }, errors: [422] },
  list: { tag: 'projects', summary: 'List projects', ok: { 200: list('projects', projectSchema, 'Every project') } },
  get: { tag: 'projects', summary: 'Get a project', ok: { 200: one('The project', projectSchema) }, errors: [404] },
  patch: {
    tag: 'projects',
    summary: 'Change a project',
    description: 'Change `name`, `testCommand` or `config` (e.g. raise `budgetUsd`: a run blocked on its budget resumes).',
    ok: { 200: one('The project as changed', projectSchema) },
    errors: [404, 409, 422],
  },
  delete: { tag: 'projects', summary: 'Delete a project', ok: { 204: { description: 'Deleted' } }, errors: [404, 409] },
  addTasks: { tag: 'tasks', summary: 'Add tasks, atomically', ok: { 201: list('tasks', taskSchema, 'The tasks added') }, errors: [404, 409, 422] },
  tasks: { tag: 'tasks', summary: 'List a project’s tasks', ok: { 200: list('tasks', taskSchema, 'The tasks') }, errors: [404] },
  task: {
    tag: 'tasks',
    summary: 'Get a task',
    description: '`ref` is the task’s id or its key. With its test results, the baseline it was judged against, its corrections and usage.',
    ok: { 200: one('The task', taskDetailSchema) },
    errors: [404],
  },
  retry: {
    tag: 'tasks',
    summary: 'Retry a failed, blocked or cancelled task',
    description: `Re-queues it and the tasks blocked behind it; a blocked run resumes by itself. ${CONTROL}`,
    body: guidance,
    ok: task('The task, re-queued'),
    errors: [404, 409],
  },
  cancelTask: { tag: 'tasks', summary: 'Cancel a task', description: `Aborts its in-flight work. ${CONTROL}`, ok: task('The task, cancelled'), errors: [404, 409] },
  approve: { tag: 'tasks', summary: 'Approve a task in review', description: `Its change is merged and it completes. ${CONTROL}`, ok: task('The task'), errors: [404, 409] },
  reject: {
    tag: 'tasks',
    summary: 'Reject a task in review',
    description: `The change is discarded; with guidance a correction attempt receives it, without it the task ends blocked (review_rejected). ${CONTROL}`,
    body: guidance,
    ok: task('The task'),
    errors: [404, 409],
  },
  diff: {
    tag: 'tasks',
    summary: 'A task’s change as a diff',
    description: 'Against the tree it started from; `attempt=N`: what attempt N wrote; `format=json`: one entry per file.',
    ok: { 200: { description: 'A unified diff, or with format=json the files', content: { ...textBody('text/x-diff'), ...json(fileDiffsSchema) } } },
    errors: [404],
  },
  start: { tag: 'runs', summary: 'Start a run', description: `Plans first when the project has a goal and no tasks. ${CONTROL}`, ok: { 202: run }, errors: [404, 409, 422] },
  pause: { tag: 'runs', summary: 'Pause the run', description: CONTROL, ok: { 202: run }, errors: [404, 409] },
  resume: { tag: 'runs', summary: 'Resume the run', description: CONTROL, ok: { 202: run }, errors: [404, 409] },
  cancel: { tag: 'runs', summary: 'Cancel the run', description: CONTROL, ok: { 202: run }, errors: [404, 409] },
  runs: { tag: 'runs', summary: 'List a project’s runs', ok: { 200: list('runs', runSchema, 'Newest first') }, errors: [404] },
  run: { tag: 'runs', summary: 'Get a run', ok: { 200: run }, errors: [404] },
  actors: { tag: 'actors', summary: 'The lead and every worker of the latest run', ok: { 200: list('actors', actorSchema, 'The actors') }, errors: [404] },
  actor: { tag: 'actors', summary: 'One actor, with its snapshot', ok: { 200: one('The actor', actorDetailSchema) }, errors: [404] },
  usage: { tag: 'projects', summary: 'Tokens and USD by task, agent and model', ok: { 200: one('The usage', usageReportSchema) }, errors: [404] },
} satisfies Record<string, RouteDoc>;

export function projectRoutes(runtime: Runtime): Hono {
  const app = new Hono();

  app.post('/', describe(docs.create), requireJson, valid('json', createProjectSchema), async (c) => c.json(await runtime.createProject(c.req.valid('json')), 201));
  app.get('/', describe(docs.list), async (c) => c.json({ projects: await runtime.listProjects() }));
  app.get('/:id', describe(docs.get), valid('param', idParam), async (c) => c.json(await runtime.getProject(c.req.valid('param').id)));
  app.patch('/:id', describe(docs.patch), requireJson, valid('param', idParam), valid('json', patchProjectSchema), async (c) =>
    c.json(await runtime.updateProject(c.req.valid('param').id, c.req.valid('json'))),
  );
  app.delete('/:id', describe(docs.delete), valid('param', idParam), async (c) => {
    await runtime.deleteProject(c.req.valid('param').id);
    return c.body(null, 204);
  });

  app.post('/:id/tasks', describe(docs.addTasks), requireJson, valid('param', idParam), valid('json', addTasksSchema), async (c) =>
    c.json({ tasks: await runtime.addTasks(c.req.valid('param').id, c.req.valid('json').tasks) }, 201),
  );
  app.get('/:id/tasks', describe(docs.tasks), valid('param', idParam), async (c) => c.json({ tasks: await runtime.listTasks(c.req.valid('param').id) }));
  app.get('/:id/tasks/:ref', describe(docs.task), valid('param', taskParam), async (c) => {
    const { id, ref } = c.req.valid('param');
    return c.json(await runtime.getTask(id, ref));
  });
  app.post('/:id/tasks/:ref/retry', describe(docs.retry), requireJson, valid('param', taskParam), async (c) => {
    const { id, ref } = c.req.valid('param');
    const { guidance } = await optionalJson(c, retrySchema);
    return c.json(await runtime.retryTask(id, ref, guidance), 202);
  });
  app.post('/:id/tasks/:ref/cancel', describe(docs.cancelTask), valid('param', taskParam), async (c) => {
    const { id, ref } = c.req.valid('param');
    return c.json(await runtime.cancelTask(id, ref), 202);
  });
  app.post('/:id/tasks/:ref/approve', describe(docs.approve), valid('param', taskParam), async (c) => {
    const { id, ref } = c.req.valid('param');
    return c.json(await runtime.reviewTask(id, ref, 'approved'), 202);
  });
  app.post('/:id/tasks/:ref/reject', describe(docs.reject), requireJson, valid('param', taskParam), async (c) => {
    const { id, ref } = c.req.valid('param');
    const { guidance } = await optionalJson(c, retrySchema);
    return c.json(await runtime.reviewTask(id, ref, 'rejected', guidance), 202);
  });
  app.get('/:id/tasks/:ref/diff', describe(docs.diff), valid('param', taskParam), valid('query', diffQuery), async (c) => {
    const { id, ref } = c.req.valid('param');
    const { attempt, format } = c.req.valid('query');
    const files = await runtime.taskDiff(id, ref, attempt);
    if (format === 'json') return c.json({ files });
    return c.body(files.map((f) => f.patch).join(''), 200, { 'content-type': 'text/x-diff; charset=utf-8' });
  });

  app.post('/:id/start', describe(docs.start), valid('param', idParam), async (c) => c.json({ run: await runtime.startRun(c.req.valid('param').id) }, 202));
  app.post('/:id/pause', describe(docs.pause), valid('param', idParam), async (c) => c.json({ run: await runtime.pauseRun(c.req.valid('param').id) }, 202));
  app.post('/:id/resume', describe(docs.resume), valid('param', idParam), async (c) => c.json({ run: await runtime.resumeRun(c.req.valid('param').id) }, 202));
  app.post('/:id/cancel', describe(docs.cancel), valid('param', idParam), async (c) => c.json({ run: await runtime.cancelRun(c.req.valid('param').id) }, 202));
  app.get('/:id/runs', describe(docs.runs), valid('param', idParam), async (c) => c.json({ runs: await runtime.listRuns(c.req.valid('param').id) }));
  app.get('/:id/runs/:runId', describe(docs.run), valid('param', idParam.extend({ runId: z.string().min(1).max(100) })), async (c) => {
    const { id, runId } = c.req.valid('param');
    return c.json({ run: await runtime.getRun(id, runId) });
  });

  app.get('/:id/actors', describe(docs.actors), valid('param', idParam), async (c) => c.json({ actors: await runtime.listActors(c.req.valid('param').id) }));
  app.get('/:id/actors/:actorId', describe(docs.actor), valid('param', idParam.extend({ actorId: z.string().min(1).max(100) })), async (c) => {
    const { id, actorId } = c.req.valid('param');
    return c.json(await runtime.getActor(id, actorId));
  });
  app.get('/:id/usage', describe(docs.usage), valid('param', idParam), async (c) => c.json(await runtime.usage(c.req.valid('param').id)));

  return app;
}
