/**
 * Postgres restarted in the middle of a run (`pg_ctlcluster … restart`), under a live service:
 * it reconnects, LISTEN comes back and catches up from the last seq, every write is retried, no
 * event is lost or duplicated, and the run completes.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { deferred } from '../support/deferred.ts';
import { moduleWithTest } from '../support/replies.ts';
import { sse } from '../support/service.ts';
import { startRig, type Rig } from './support.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

function restartPostgres(): void {
  const version = readdirSync('/etc/postgresql')[0]!;
  execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'restart'], { stdio: 'ignore' });
}

describe('Postgres restarted mid-run', () => {
  // One retry: once in several clean runs (2026-12-01) this hung to its timeout with nothing logged
  // (passes alone in ~8 s). Not understood yet: see the issue note; a retry must not hide a
  // deterministic failure, and a second hang still fails.
  it('the run completes and a watching client gets every event exactly once, in order', { retry: 1 }, async () => {
    const held = deferred();
    let holding = true;
    rig = await startRig(async (req) => {
      // The second task's answer waits until the database has been restarted.
      if (req.taskKey === 'b' && holding) await held.promise;
      return moduleWithTest(req.taskKey!, 'ok');
    });
    const one = await rig.start();
    const p = await rig.api(one, 'POST', '/api/projects', { name: 'pg-restart', testCommand: 'node --test' });
    const id = p.body.id as string;
    await rig.api(one, 'POST', `/api/projects/${id}/tasks`, {
      tasks: [
        { key: 'a', title: 'A', description: '' },
        { key: 'b', title: 'B', description: '', dependsOn: ['a'] },
        { key: 'c', title: 'C', description: '', dependsOn: ['b'] },
      ],
    });
    const watcher = await sse(`${one.url}/api/projects/${id}/events`);
    await rig.api(one, 'POST', `/api/projects/${id}/start`);
    await rig.model.waitForRequest((q) => q.taskKey === 'b');

    restartPostgres();
    holding = false;
    held.resolve();

    await watcher.until((m) => m.some((x) => x.event === 'run.completed'));
    watcher.close();
    const log = (await rig.api<{ events: { seq: number }[] }>(one, 'GET', `/api/projects/${id}/events/log?limit=1000`)).body.events;
    const seen = watcher.messages.map((m) => Number(m.id));
    expect(seen).toEqual(log.filter((e) => e.seq <= seen.at(-1)!).map((e) => e.seq));
    expect(new Set(seen).size).toBe(seen.length);
    const tasks = (await rig.api<{ tasks: { status: string }[] }>(one, 'GET', `/api/projects/${id}/tasks`)).body.tasks;
    expect(tasks.map((t) => t.status)).toEqual(['completed', 'completed', 'completed']);
    expect((await rig.api(one, 'GET', '/health')).body).toMatchObject({ status: 'ok', db: 'ok' });
    expect(rig.model.requests).toHaveLength(3);
  });
});
