/**
 * Bad input does nothing: each refused create, patch or task list answers 4xx naming the field,
 * and leaves no trace — no project row, no directory, no `git init`, no task, no event. (How fast
 * those answers come is measured by `bench/bad-input.ts`, not asserted here.)
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';
import { moduleWithTest } from '../support/replies.ts';

let t: TestApp | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await t?.close();
  t = undefined;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'troupe-bad-'));
  dirs.push(dir);
  return dir;
}

interface ErrorJson {
  error: { code: string; message: string; details?: { path: string; message: string }[] };
}

/** Everything a refused request could have left behind. */
async function traces(app: TestApp) {
  const projects = (await app.json<{ id: string }[]>('GET', '/api/projects')).body;
  const workspaces = await readdir(path.join(app.dataDir, 'workspaces')).catch(() => []);
  return { projects: projects.length, workspaces: workspaces.length };
}

describe('bad input does nothing', () => {
  it('a refused create leaves no row, no directory and no repository, and names the field', async () => {
    t = await startTestApp((req) => moduleWithTest(req.taskKey!, 'ok'));
    const parent = await tempDir();
    const missing = path.join(parent, 'typo', 'calc');
    const plain = path.join(parent, 'plain');
    execFileSync('mkdir', [plain]);
    const before = await traces(t);

    const cases: { body: unknown; status: number; field: string; message: RegExp }[] = [
      { body: { name: 'x', testCommand: 'node --test', workspace: missing }, status: 422, field: 'workspace', message: /does not exist/ },
      { body: { name: 'x', testCommand: 'no-such-runner-here --all' }, status: 422, field: 'testCommand', message: /cannot start: command not found: no-such-runner-here/ },
      { body: { name: 'x', testCommand: 'no-such-runner-here', workspace: plain }, status: 422, field: 'testCommand', message: /command not found/ },
      { body: { name: 'x', testCommand: './missing.sh', workspace: plain }, status: 422, field: 'testCommand', message: /cannot start/ },
      { body: { name: 'x', testCommand: 'node --test', workspace: plain, config: { isolation: 'worktree' } }, status: 400, field: 'config.isolation', message: /not a git repository/ },
      { body: { name: 'x\u0000y', testCommand: 'node --test' }, status: 400, field: 'name', message: /./ },
      { body: { name: 'x', testCommand: 'node --test', config: { maxConcurrency: 0 } }, status: 400, field: 'config.maxConcurrency', message: /./ },
      { body: { name: 'x', testCommand: 'node --test', colour: 'red' }, status: 400, field: 'colour', message: /unknown field/ },
    ];
    for (const c of cases) {
      const res = await t.json<ErrorJson>('POST', '/api/projects', c.body);
      expect({ body: c.body, status: res.status }).toEqual({ body: c.body, status: c.status });
      const detail = res.body.error.details?.find((d) => d.path === c.field);
      expect(detail, `${JSON.stringify(c.body)}: ${JSON.stringify(res.body)}`).toBeDefined();
      expect(detail!.message).toMatch(c.message);
    }
    expect(await traces(t)).toEqual(before);
    // A typo is not a new repository; a plain directory is not turned into one by a refused create.
    expect(existsSync(path.join(parent, 'typo'))).toBe(false);
    expect(existsSync(path.join(plain, '.git'))).toBe(false);

    // The default workspace is still made, for a valid body.
    const made = await t.json<{ id: string; workspace: string }>('POST', '/api/projects', { name: 'ok', testCommand: 'node --test' });
    expect(made.status).toBe(201);
    expect(existsSync(path.join(made.body.workspace, '.git'))).toBe(true);
  });

  it('a refused patch changes nothing; a refused task list adds nothing and tells nothing', async () => {
    t = await startTestApp((req) => moduleWithTest(req.taskKey!, 'ok'));
    const made = await t.json<{ id: string; testCommand: string[] }>('POST', '/api/projects', { name: 'calc', testCommand: 'node --test' });
    const id = made.body.id;
    const project = (await t.json('GET', `/api/projects/${id}`)).body;

    const patch = await t.json<ErrorJson>('PATCH', `/api/projects/${id}`, { name: 'renamed', testCommand: 'no-such-runner-here' });
    expect(patch.status).toBe(422);
    expect(patch.body.error.details).toEqual([expect.objectContaining({ path: 'testCommand', message: expect.stringContaining('command not found') as string })]);
    expect((await t.json('GET', `/api/projects/${id}`)).body).toEqual(project);

    const eventsBefore = (await t.events(id)).length;
    const tasks = [
      { key: 'a', title: 'A', description: '' },
      { key: 'b', title: 'B', description: '', dependsOn: ['ghost'] },
    ];
    const unknown = await t.json<ErrorJson>('POST', `/api/projects/${id}/tasks`, { tasks });
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.message).toContain('unknown task "ghost"');
    const cycle = await t.json<ErrorJson>('POST', `/api/projects/${id}/tasks`, {
      tasks: [
        { key: 'a', title: 'A', description: '', dependsOn: ['b'] },
        { key: 'b', title: 'B', description: '', dependsOn: ['a'] },
      ],
    });
    expect(cycle.status).toBe(422);
    expect(cycle.body.error.message).toMatch(/cycle/);
    expect((await t.json('GET', `/api/projects/${id}/tasks`)).body).toEqual({ tasks: [] });
    expect(await t.events(id)).toHaveLength(eventsBefore);
    // Nothing to run is refused too, and starts nothing.
    expect((await t.json('POST', `/api/projects/${id}/start`)).status).toBe(422);
    expect(await t.runtime.listRuns(id)).toEqual([]);
  });
});
