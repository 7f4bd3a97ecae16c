/**
 * Projects, tasks, runs, actors and usage (contract §2). Handlers validate, call the runtime
 * (which persists or sends an event to a lead) and return: they never wait for agent work.
 */
import { Hono } from 'hono';
import { z } from 'zod';
import type { Runtime } from '../../actors/runtime/runtime.ts';
import { addTasksSchema, createProjectSchema, patchProjectSchema, retrySchema } from '../../domain/inputs.ts';
import { optionalJson, requireJson, valid } from '../validate.ts';

const idParam = z.object({ id: z.string().min(1).max(100) });
const taskParam = idParam.extend({ ref: z.string().min(1).max(100) });
const diffQuery = z.strictObject({
  attempt: z.coerce.number().int().min(1).max(1000).optional(),
  format: z.enum(['json', 'diff']).optional(),
});

export function projectRoutes(runtime: Runtime): Hono {
  const app = new Hono();

  app.post('/', requireJson, valid('json', createProjectSchema), async (c) => c.json(await runtime.createProject(c.req.valid('json')), 201));
  app.get('/', async (c) => c.json({ projects: await runtime.listProjects() }));
  app.get('/:id', valid('param', idParam), async (c) => c.json(await runtime.getProject(c.req.valid('param').id)));
  app.patch('/:id', requireJson, valid('param', idParam), valid('json', patchProjectSchema), async (c) =>
    c.json(await runtime.updateProject(c.req.valid('param').id, c.req.valid('json'))),
  );
  app.delete('/:id', valid('param', idParam), async (c) => {
    await runtime.deleteProject(c.req.valid('param').id);
    return c.body(null, 204);
  });

  app.post('/:id/tasks', requireJson, valid('param', idParam), valid('json', addTasksSchema), async (c) =>
    c.json({ tasks: await runtime.addTasks(c.req.valid('param').id, c.req.valid('json').tasks) }, 201),
  );
  app.get('/:id/tasks', valid('param', idParam), async (c) => c.json({ tasks: await runtime.listTasks(c.req.valid('param').id) }));
  app.get('/:id/tasks/:ref', valid('param', taskParam), async (c) => {
    const { id, ref } = c.req.valid('param');
    return c.json(await runtime.getTask(id, ref));
  });
  app.post('/:id/tasks/:ref/retry', requireJson, valid('param', taskParam), async (c) => {
    const { id, ref } = c.req.valid('param');
    const { guidance } = await optionalJson(c, retrySchema);
    return c.json(await runtime.retryTask(id, ref, guidance), 202);
  });
  app.post('/:id/tasks/:ref/cancel', valid('param', taskParam), async (c) => {
    const { id, ref } = c.req.valid('param');
    return c.json(await runtime.cancelTask(id, ref), 202);
  });
  app.post('/:id/tasks/:ref/approve', valid('param', taskParam), async (c) => {
    const { id, ref } = c.req.valid('param');
    return c.json(await runtime.reviewTask(id, ref, 'approved'), 202);
  });
  app.post('/:id/tasks/:ref/reject', requireJson, valid('param', taskParam), async (c) => {
    const { id, ref } = c.req.valid('param');
    const { guidance } = await optionalJson(c, retrySchema);
    return c.json(await runtime.reviewTask(id, ref, 'rejected', guidance), 202);
  });
  app.get('/:id/tasks/:ref/diff', valid('param', taskParam), valid('query', diffQuery), async (c) => {
    const { id, ref } = c.req.valid('param');
    const { attempt, format } = c.req.valid('query');
    const files = await runtime.taskDiff(id, ref, attempt);
    if (format === 'json') return c.json({ files });
    return c.body(files.map((f) => f.patch).join(''), 200, { 'content-type': 'text/x-diff; charset=utf-8' });
  });

  app.post('/:id/start', valid('param', idParam), async (c) => c.json({ run: await runtime.startRun(c.req.valid('param').id) }, 202));
  app.post('/:id/pause', valid('param', idParam), async (c) => c.json({ run: await runtime.pauseRun(c.req.valid('param').id) }, 202));
  app.post('/:id/resume', valid('param', idParam), async (c) => c.json({ run: await runtime.resumeRun(c.req.valid('param').id) }, 202));
  app.post('/:id/cancel', valid('param', idParam), async (c) => c.json({ run: await runtime.cancelRun(c.req.valid('param').id) }, 202));
  app.get('/:id/runs', valid('param', idParam), async (c) => c.json({ runs: await runtime.listRuns(c.req.valid('param').id) }));
  app.get('/:id/runs/:runId', valid('param', idParam.extend({ runId: z.string().min(1).max(100) })), async (c) => {
    const { id, runId } = c.req.valid('param');
    return c.json({ run: await runtime.getRun(id, runId) });
  });

  app.get('/:id/actors', valid('param', idParam), async (c) => c.json({ actors: await runtime.listActors(c.req.valid('param').id) }));
  app.get('/:id/actors/:actorId', valid('param', idParam.extend({ actorId: z.string().min(1).max(100) })), async (c) => {
    const { id, actorId } = c.req.valid('param');
    return c.json(await runtime.getActor(id, actorId));
  });
  app.get('/:id/usage', valid('param', idParam), async (c) => c.json(await runtime.usage(c.req.valid('param').id)));

  return app;
}
