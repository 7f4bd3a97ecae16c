/**
 * One owner per run, across real processes (issue 11): two `troupe serve` processes on one
 * Postgres database, each with its own data dir. Control requests sent to the process that does
 * not own the run are carried to the owner and answered 202; after a `kill -9` of the owner the
 * other process adopts the run (its liveness lock went with the killed process's session, so
 * without waiting for the lease); the old owner, restarted, writes nothing for the run.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeFiles } from '../support/replies.ts';
import { crash, until } from './support.ts';
import { startCluster, type Cluster } from './takeover-support.ts';
import { isAlive } from '../actors/testing/workspace.ts';

let cluster: Cluster | undefined;
let gate: string | undefined;
afterEach(async () => {
  // A test process left by the killed owner (no sandbox here) ends too.
  if (gate) await writeFile(gate, '');
  await cluster?.close();
  cluster = undefined;
});

interface RunBody {
  run: { id: string; status: string };
}
interface LogBody {
  events: { seq: number; type: string; runId?: string }[];
}


describe('one owner per run across processes', () => {
  it('control sent to the non-owner is answered 202 and takes effect; kill -9 of the owner: the other adopts; the old owner, restarted, writes nothing for the run', async () => {
    cluster = await startCluster(() => writeFiles({ 'done.txt': 'done\n' }));
    const c = cluster;
    // A plain directory (shared mode): where the tests run does not depend on the process.
    const ws = path.join(c.scratch, 'ws');
    const starts = path.join(c.scratch, 'starts');
    gate = path.join(c.scratch, 'gate');
    await mkdir(ws);
    await writeFile(
      path.join(ws, 'gate.js'),
      // The baseline (no done.txt yet) passes at once and is not counted; a task's tests wait.
      `const fs = require('fs');\nif (!fs.existsSync('done.txt')) { console.log('# tests 1\\n# pass 1'); process.exit(0); }\n` +
        `fs.appendFileSync(${JSON.stringify(starts)}, process.pid + '\\n');\n` +
        `const wait = () => fs.existsSync(${JSON.stringify(gate)}) ? console.log('# tests 1\\n# pass 1') : setTimeout(wait, 20);\nwait();\n`,
    );
    const pids = async () => (existsSync(starts) ? (await readFile(starts, 'utf8')).split('\n').filter(Boolean).map(Number) : []);

    const one = await c.start(0);
    const two = await c.start(1);
    const p = await c.api<{ id: string }>(one, 'POST', '/api/projects', {
      name: 'owners',
      testCommand: ['node', 'gate.js'],
      workspace: ws,
      config: { sandbox: { mode: 'none' } },
    });
    const id = p.body.id;
    await c.api(one, 'POST', `/api/projects/${id}/tasks`, { tasks: [{ key: 't', title: 'T', description: '' }] });
    const started = await c.api<RunBody>(one, 'POST', `/api/projects/${id}/start`);
    expect(started.status).toBe(202);
    const runId = started.body.run.id;
    await until(async () => (await pids()).length === 1, 'the test process');
    const log = async () => (await c.api<LogBody>(two, 'GET', `/api/projects/${id}/events/log?limit=1000`)).body.events;

    // Sent to the process that does not own the run: answered 202 by way of the owner.
    const paused = await c.api<RunBody>(two, 'POST', `/api/projects/${id}/pause`);
    expect(paused).toMatchObject({ status: 202, body: { run: { id: runId, status: 'pausing' } } });
    await until(async () => (await log()).some((e) => e.type === 'run.pausing' && e.runId === runId), 'run.pausing');
    const resumed = await c.api<RunBody>(two, 'POST', `/api/projects/${id}/resume`);
    expect(resumed).toMatchObject({ status: 202, body: { run: { id: runId, status: 'running' } } });
    await until(async () => (await log()).some((e) => e.type === 'run.resumed' && e.runId === runId), 'run.resumed');

    // kill -9 of the owner: the other process adopts the run and runs its tests again.
    await crash(one);
    const killed = Date.now();
    await until(async () => (await pids()).length === 2, 'the adopter to run the tests', 25_000);
    const adoptMs = Date.now() - killed;
    // The default lease is 30 s: the adopter did not wait for it.
    expect(adoptMs).toBeLessThan(15_000);

    // The old owner, restarted, leaves the run to the live adopter: no event, no model call, no test process.
    const again = await c.start(0);
    const seq = (await log()).at(-1)!.seq;
    const calls = c.model.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 5000));
    expect((await log()).at(-1)!.seq).toBe(seq);
    expect(c.model.requests.length).toBe(calls);
    expect(await pids()).toHaveLength(2);

    // It is now the non-owner: a cancel sent to it is carried to the adopter.
    const cancelled = await c.api<RunBody>(again, 'POST', `/api/projects/${id}/cancel`);
    expect(cancelled).toMatchObject({ status: 202, body: { run: { id: runId, status: 'cancelled' } } });
    await until(async () => (await log()).some((e) => e.type === 'run.cancelled' && e.runId === runId), 'run.cancelled');
    const [, adopterPid] = await pids();
    await until(() => !isAlive(adopterPid!), "the adopter's test process to be killed");
    const run = await c.api<RunBody>(again, 'GET', `/api/projects/${id}/runs/${runId}`);
    expect(run.body.run.status).toBe('cancelled');
  });
});
