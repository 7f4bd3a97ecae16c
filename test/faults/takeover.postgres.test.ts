/**
 * Takeover across data dirs (issue 11): two `troupe serve` processes on one Postgres database,
 * each with a data dir of its own. `kill -9` of the owner during a model call, then of the
 * process that took over during the tests: the other one adopts each time and the run completes
 * with one commit per task. Each adopter rebuilds the task's tree under its own data dir (the
 * tests run there, never in the dead owner's tree) and writes nothing under the dead one's.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Reply } from '../../src/scripted-model/server.ts';
import { moduleWithTest } from '../support/replies.ts';
import { sse } from '../support/service.ts';
import { crash, until } from './support.ts';
import { listing, startCluster, type Cluster } from './takeover-support.ts';

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd, encoding: 'utf8' }).trim();

/**
 * The project's test command: notes where it runs, and holds task c's tests (the tree has
 * `lib/c.js`) until the gate file exists.
 */
function gateScript(log: string, waiting: string, gate: string): string {
  return `const fs = require('fs');
fs.appendFileSync(${JSON.stringify(log)}, process.cwd() + '\\n');
const pass = () => console.log('# tests 1\\n# pass 1');
if (!fs.existsSync('lib/c.js')) pass();
else {
  fs.writeFileSync(${JSON.stringify(waiting)}, process.cwd());
  const wait = () => (fs.existsSync(${JSON.stringify(gate)}) ? pass() : setTimeout(wait, 20));
  wait();
}
`;
}

describe('takeover by a process with another data dir', () => {
  it('kill -9 of the owner during a model call, then of the adopter during the tests: the run completes, one commit per task, no write under a dead data dir', async () => {
    let hung = false;
    cluster = await startCluster((req): Reply => {
      if (req.taskKey === 'b' && !hung) {
        hung = true;
        return { kind: 'hang' };
      }
      return moduleWithTest(req.taskKey!, 'ok');
    });
    const c = cluster;
    const [dirOne, dirTwo] = c.dataDirs as [string, string];
    const ws = path.join(c.scratch, 'ws');
    const log = path.join(c.scratch, 'test-cwds.log');
    const waiting = path.join(c.scratch, 'c-waiting');
    const gate = path.join(c.scratch, 'gate');
    execFileSync('git', ['init', '-q', '-b', 'main', ws]);
    await writeFile(path.join(ws, 'gate.js'), gateScript(log, waiting, gate));
    git(ws, 'add', '-A');
    git(ws, 'commit', '-q', '-m', 'init');

    const one = await c.start(0);
    const two = await c.start(1);
    const created = await c.api(one, 'POST', '/api/projects', { name: 'takeover', workspace: ws, testCommand: ['node', 'gate.js'], config: { sandbox: { mode: 'none' } } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const tasks = [
      { key: 'a', title: 'A', description: '' },
      { key: 'b', title: 'B', description: '', dependsOn: ['a'] },
      { key: 'c', title: 'C', description: '', dependsOn: ['b'] },
    ];
    expect((await c.api(one, 'POST', `/api/projects/${id}/tasks`, { tasks })).status).toBe(201);
    expect((await c.api(one, 'POST', `/api/projects/${id}/start`)).status).toBe(202);

    // The owner (data dir one) is in b's model call, which never answers.
    await c.model.waitForRequest((q) => q.taskKey === 'b');
    await crash(one);
    const oneAtDeath = await listing(dirOne);

    // Two adopts: asks for b again, lands it, and holds in c's tests.
    await until(() => existsSync(waiting), "c's tests to start in the adopting process", 40_000);
    await crash(two);
    const twoAtDeath = await listing(dirTwo);
    expect(await listing(dirOne)).toEqual(oneAtDeath);

    // Data dir one comes back (a new process) and adopts the run from two.
    await writeFile(gate, '');
    const three = await c.start(0);
    const ended = await sse(`${three.url}/api/projects/${id}/events?types=run.completed,run.blocked,run.failed`);
    await ended.until((m) => m.length > 0);
    ended.close();
    expect(ended.messages[0]!.event).toBe('run.completed');

    const rows = (await c.api<{ tasks: { key: string; status: string }[] }>(three, 'GET', `/api/projects/${id}/tasks`)).body.tasks;
    expect(rows.map((t) => [t.key, t.status])).toEqual([
      ['a', 'completed'],
      ['b', 'completed'],
      ['c', 'completed'],
    ]);
    expect(git(ws, 'log', '--format=%s').split('\n')).toEqual(['C (c)', 'B (b)', 'A (a)', 'init']);
    expect(git(ws, 'status', '--porcelain')).toBe('');
    // Each test ran in the tree of the process executing the task, under its own data dir.
    const cwds = (await readFile(log, 'utf8')).trim().split('\n');
    const under = (dir: string, key: string) => new RegExp(`^${dir}/worktrees/[^/]+/${key}$`);
    // First the baseline, once, in the starting process's detached tree of the base commit (an
    // adopter takes the run past its preflight).
    expect(cwds).toHaveLength(5);
    expect(cwds[0]).toMatch(under(dirOne, '\\.baseline-run_[a-z0-9]+'));
    expect(cwds[1]).toMatch(under(dirOne, 'a'));
    expect(cwds[2]).toMatch(under(dirTwo, 'b'));
    expect(cwds[3]).toMatch(under(dirTwo, 'c'));
    expect(cwds[4]).toMatch(under(dirOne, 'c'));
    // b's call was asked again (the first never answered); nothing answered was asked twice.
    const answered = c.model.requests.filter((q) => q.answeredAt !== null).map((q) => q.taskKey);
    expect(answered.sort()).toEqual(['a', 'b', 'c']);
    // Nothing was written under the data dir of the process that was dead meanwhile.
    expect(await listing(dirTwo)).toEqual(twoAtDeath);
  });
});
