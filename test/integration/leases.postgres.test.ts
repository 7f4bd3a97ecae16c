/**
 * Two runtimes ("processes") on one Postgres database: a run is executed by the process that
 * holds its lease; the other serves reads and refuses control with the owner's name; when the
 * owner goes away its run is adopted — restored from its snapshot, the recorded answer reused.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { afterEach, describe, expect, it } from 'vitest';
import { Runtime } from '../../src/actors/runtime/runtime.ts';
import { childEnvFrom } from '../../src/config.ts';
import type { Store } from '../../src/db/client.ts';
import { createProjectSchema } from '../../src/domain/inputs.ts';
import { EventBus } from '../../src/events/bus.ts';
import type { TroupeEvent } from '../../src/events/types.ts';
import { silentLogger } from '../../src/logger.ts';
import { startScriptedModel, type ScriptedModel } from '../../src/scripted-model/server.ts';
import { createTestStore } from '../support/db.ts';
import { writeFiles } from '../support/replies.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function runtimeOn(store: Store, model: ScriptedModel, dataDir: string): Promise<{ runtime: Runtime; bus: EventBus }> {
  const bus = new EventBus(store, silentLogger);
  const runtime = new Runtime({
    store,
    bus,
    logger: silentLogger,
    client: new Anthropic({ baseURL: model.url, apiKey: 'sk-test', maxRetries: 0 }),
    dataDir,
    childEnv: childEnvFrom(process.env),
    leaseMs: 600,
  });
  await runtime.start();
  cleanups.push(async () => {
    await runtime.stop();
    await bus.stop();
  });
  return { runtime, bus };
}

function waitFor(bus: EventBus, projectId: string, match: (e: TroupeEvent) => boolean): Promise<TroupeEvent> {
  return new Promise((resolve) => {
    const sub = bus.subscribe({ projectId, fromSeq: 0 }, (e) => {
      if (match(e)) {
        sub.close();
        resolve(e);
      }
    });
  });
}

describe('run leases', () => {
  it('one process executes a run; the other reads, refuses control, and adopts the run when the owner shuts down', async () => {
    const store = await createTestStore({ isolated: true });
    cleanups.push(() => store.close());
    const model = await startScriptedModel(() => writeFiles({ 'done.txt': 'done\n' }));
    cleanups.push(() => model.close());
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'troupe-lease-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));

    // A test command that waits for a gate: the run can be caught mid-test.
    const gate = path.join(dataDir, 'gate');
    const workspace = path.join(dataDir, 'ws');
    await rm(workspace, { recursive: true, force: true });
    execFileSync('git', ['init', '-q', '-b', 'main', workspace]);
    await writeFile(path.join(workspace, 'gate.js'), `const fs = require('fs');\nconst wait = () => fs.existsSync(${JSON.stringify(gate)}) ? console.log('# tests 1\\n# pass 1') : setTimeout(wait, 20);\nwait();\n`);
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', 'add', '-A'], { cwd: workspace });
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m', 'init'], { cwd: workspace });

    const a = await runtimeOn(store, model, dataDir);
    const b = await runtimeOn(store, model, dataDir);
    const project = await a.runtime.createProject(createProjectSchema.parse({ name: 'leased', testCommand: ['node', 'gate.js'], workspace, config: { sandbox: { mode: 'none' } } }));
    await a.runtime.addTasks(project.id, [{ key: 'a', title: 'A', description: '', dependsOn: [], priority: 2 }]);
    const run = await a.runtime.startRun(project.id);
    await waitFor(a.bus, project.id, (e) => e.type === 'agent.state_changed' && (e.data as { state: unknown }).state === 'testing');

    // B serves reads, but the run is A's.
    expect((await b.runtime.getProject(project.id)).status).toBe('running');
    expect(b.runtime.host(project.id)).toBeUndefined();
    await expect(b.runtime.pauseRun(project.id)).rejects.toMatchObject({ status: 409, message: expect.stringContaining(a.runtime.leases.owner) as string });
    await expect(b.runtime.cancelTask(project.id, 'a')).rejects.toMatchObject({ status: 409 });
    await expect(b.runtime.startRun(project.id)).rejects.toMatchObject({ status: 409 });

    // A goes away gracefully; B adopts the run from A's snapshot on its next heartbeat.
    await a.runtime.stop();
    const last = (await b.runtime.eventLog(project.id, 0, 1000)).events.at(-1)!.seq;
    // The restored worker reports its state again when B's lead comes up.
    await waitFor(b.bus, project.id, (e) => e.seq > last && e.type === 'agent.state_changed' && e.agentId === 'backend-1');
    expect(b.runtime.host(project.id)?.runId).toBe(run.id);
    await writeFile(gate, '');
    const end = await waitFor(b.bus, project.id, (e) => e.type === 'run.completed');
    expect(end.runId).toBe(run.id);
    expect(model.requests).toHaveLength(1);
    expect(await b.runtime.getTask(project.id, 'a')).toMatchObject({ status: 'completed', attempts: 1 });
  });
});
