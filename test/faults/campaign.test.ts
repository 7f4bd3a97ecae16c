/**
 * The crash campaign: one task graph (dependencies, a correction, parallel merges that rebase and
 * retest) run to completion again and again while the real service is `kill -9`ed at seeded random
 * points — a delay after a start, or N ms after the k-th event of some type on its stream (so kills
 * land in model calls, applies, tests, commits, merges and between dispatches) — and restarted on
 * the same data dir until the run ends. After every run: every task completed, nothing recorded was
 * paid for again, the log's seqs strictly increase and equal both a stream replayed from 0 and the
 * streams a client followed across the crashes, one commit per task on the branch, and after every
 * kill nothing of the dead service is left running.
 *
 * `TROUPE_CRASH_SEED=<n>` replays a campaign (the seed is printed first, then each point);
 * `TROUPE_CRASH_POINTS=<n>` sets how many kills it makes (default 5 per database pass: 10 per `npm test`).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import type { EventSourceMessage } from 'eventsource-parser';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { MessagesRequest, Reply } from '../../src/scripted-model/server.ts';
import { moduleWithTest } from '../support/replies.ts';
import { sse, type SseClient } from '../support/service.ts';
import { crash, startRig, until, type Instance, type Rig } from './support.ts';
import { rng } from '../../bench/dag.ts';

const env = z
  .object({
    TROUPE_CRASH_SEED: z.coerce.number().int().min(0).max(0xffffffff).optional(),
    TROUPE_CRASH_POINTS: z.coerce.number().int().min(1).max(1000).default(5),
  })
  .parse(process.env);
const SEED = env.TROUPE_CRASH_SEED ?? randomInt(0, 0xffffffff);
const POINTS = env.TROUPE_CRASH_POINTS;
/** Kills in one run at most, so every run also shows the service finishing after restarts. */
const MAX_KILLS_PER_RUN = 3;
const RUN_DEADLINE_MS = 90_000;


/** Where a kill lands: a delay after the service listens, or a delay after the k-th event of a type on its stream. */
type Point = { kind: 'delay'; ms: number } | { kind: 'event'; type: string; k: number; ms: number };

// Not `merge.completed`: the service does not emit it yet. A merge (rebase, retest, fast-forward)
// follows `commit.created` at once, so kills shortly after that land in it.
const KILL_AFTER = ['task.assigned', 'llm.usage', 'files.applied', 'test.result', 'correction.attempt', 'commit.created', 'task.status_changed'];

function pickPoint(random: () => number): Point {
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  if (random() < 0.3) return { kind: 'delay', ms: int(0, 2500) };
  // "Just after commit.created" (the window where a landed task used to be lost) gets extra weight.
  const type = random() < 0.25 ? 'commit.created' : KILL_AFTER[int(0, KILL_AFTER.length - 1)]!;
  return { kind: 'event', type, k: [1, 1, 1, 2][int(0, 3)]!, ms: int(0, 200) };
}

const describePoint = (p: Point) => (p.kind === 'delay' ? `${p.ms} ms after listening` : `${p.ms} ms after ${p.type} #${p.k}`);

const TERMINAL = new Set(['run.completed', 'run.blocked', 'run.failed', 'run.cancelled']);

/** The graph: b and c after a (parallel: the second to land is rebased and retested), c's first answer fails its test, d after both, e alone. */
function graph(run: number) {
  const key = (k: string) => `r${run}-${k}`;
  return [
    { key: key('a'), title: `A${run}`, description: '' },
    { key: key('b'), title: `B${run}`, description: '', dependsOn: [key('a')] },
    { key: key('c'), title: `C${run}`, description: '', dependsOn: [key('a')] },
    { key: key('d'), title: `D${run}`, description: '', dependsOn: [key('b'), key('c')] },
    { key: key('e'), title: `E${run}`, description: '' },
  ];
}

/**
 * Task `*-c` answers wrong on its first attempt (its test fails, a correction follows). Every
 * answer takes 150 ms, so that kills also land inside model calls.
 */
const respond = (req: MessagesRequest): Reply => {
  const key = req.taskKey!;
  return { kind: 'delay', ms: 150, then: key.endsWith('-c') && req.attempt === 1 ? moduleWithTest(key, 'wrong', 'ok') : moduleWithTest(key, 'ok') };
};

interface LogEvent {
  seq: number;
  type: string;
  taskId?: string;
  at: string;
  data: Record<string, unknown>;
}

/** Pids (not ours, not in `except`) whose command line or cwd points into `dir`. */
function processesIn(dir: string, except: number[]): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid || except.includes(pid)) continue;
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      let cwd = '';
      try {
        cwd = readlinkSync(`/proc/${pid}/cwd`);
      } catch {
        // another user's process, or gone
      }
      if (args.includes(dir) || cwd.startsWith(dir)) found.push(`${pid}: ${args.trim()} (cwd ${cwd})`);
    } catch {
      // exited while we looked
    }
  }
  return found;
}

async function noOrphans(dir: string, except: number[] = []): Promise<void> {
  // A process killed with its parent takes a moment to be reaped; anything still there after 5 s outlived the kill.
  await until(() => processesIn(dir, except).length === 0, `no process of a killed service left in ${dir}`, 5_000).catch(() => {
    throw new Error(`orphaned processes:\n${processesIn(dir, except).join('\n')}`);
  });
}

async function fullLog(rig: Rig, i: Instance, projectId: string): Promise<LogEvent[]> {
  const out: LogEvent[] = [];
  for (let since = 0; ; ) {
    const page = (await rig.api<{ events: LogEvent[]; next: number | null }>(i, 'GET', `/api/projects/${projectId}/events/log?since=${since}&limit=500`)).body;
    out.push(...page.events);
    if (page.events.length === 0 || page.next === null || page.next === since) return out;
    since = page.next;
  }
}

function deadline<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what()}`)), ms);
  });
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe('crash campaign', () => {
  it(`kill -9 at ${POINTS} seeded random points: every run completes with its invariants intact`, { timeout: 600_000 }, async () => {
    console.log(`crash campaign: TROUPE_CRASH_SEED=${SEED} TROUPE_CRASH_POINTS=${POINTS}`);
    const random = rng(SEED);
    rig = await startRig(respond);
    const r = rig;
    /** Each instance's life, to tell which one an answer went to. */
    const lives: { startedAt: number; killedAt: number | null }[] = [];
    let kills = 0;
    let lostInFlight = 0;
    const started = Date.now();
    let instance = await r.start();
    lives.push({ startedAt: Date.now(), killedAt: null });
    // The orphan check sees what it should: the live service is found by it.
    expect(processesIn(r.dataDir, []).some((line) => line.startsWith(`${instance.child.pid}:`))).toBe(true);

    for (let run = 0; kills < POINTS; run++) {
      const runStarted = Date.now();
      const tasks = graph(run);
      const planned = Math.min(MAX_KILLS_PER_RUN, POINTS - kills);
      let killsThisRun = 0;
      const p = await r.api(instance, 'POST', '/api/projects', {
        name: `campaign-${run}`,
        testCommand: 'node --test',
        config: { sandbox: { mode: 'bwrap' }, maxConcurrency: 3 },
      });
      expect(p.status).toBe(201);
      const projectId = p.body.id as string;
      expect((await r.api(instance, 'POST', `/api/projects/${projectId}/tasks`, { tasks })).status).toBe(201);
      let watcher: SseClient = await sse(`${instance.url}/api/projects/${projectId}/events`);
      expect((await r.api(instance, 'POST', `/api/projects/${projectId}/start`)).status).toBe(202);
      /** Everything a client following the project saw, across the crashes. */
      const followed: EventSourceMessage[] = [];

      for (;;) {
        const ended = watcher.until((m) => m.some((x) => TERMINAL.has(x.event ?? '')));
        let fired = false;
        if (killsThisRun < planned) {
          const point = pickPoint(random);
          const from = watcher.messages.length;
          const w = watcher;
          const trigger = async () => {
            if (point.kind === 'event') await w.until((m) => m.slice(from).filter((x) => x.event === point.type).length >= point.k);
            await sleep(point.ms);
            return true;
          };
          fired = await deadline(Promise.race([ended.then(() => false), trigger()]), RUN_DEADLINE_MS, () => `run ${run}: neither the point nor the end came`);
          const where = `run ${run}, instance ${lives.length}: ${describePoint(point)}`;
          if (fired) {
            await crash(instance);
            lives.at(-1)!.killedAt = Date.now();
            kills++;
            killsThisRun++;
            const last = watcher.messages.at(-1);
            console.log(`crash point ${kills}/${POINTS} (${where}): killed, last event seen ${last?.id ?? '-'} ${last?.event ?? ''}`);
            await watcher.ended;
            followed.push(...watcher.messages);
            await noOrphans(r.dataDir);
            const restarting = Date.now();
            instance = await r.start();
            lives.push({ startedAt: Date.now(), killedAt: null });
            watcher = await sse(`${instance.url}/api/projects/${projectId}/events`, { lastEventId: watcher.lastId });
            const resumedFrom = Number(watcher.lastId ?? 0);
            void watcher
              .until((m) => m.some((x) => Number(x.id) > resumedFrom))
              .then(() => console.log(`  restarted: listening after ${lives.at(-1)!.startedAt - restarting} ms, first new event after ${Date.now() - restarting} ms`));
            continue;
          }
          console.log(`crash point not reached (${where}): the run ended first`);
        }
        await deadline(ended, RUN_DEADLINE_MS, () => `run ${run} did not end; stderr: ${instance.stderr().slice(-2000)}`);
        break;
      }
      const terminal = watcher.messages.find((x) => TERMINAL.has(x.event ?? ''))!;
      if (terminal.event !== 'run.completed') {
        // What happened to the tasks that did not complete, for the report.
        const rows = (await r.api<{ tasks: { id: string; key: string; status: string }[] }>(instance, 'GET', `/api/projects/${projectId}/tasks`)).body.tasks;
        const notDone = new Set(rows.filter((t) => t.status !== 'completed').map((t) => t.id));
        const story = (await fullLog(r, instance, projectId))
          .filter((e) => e.taskId !== undefined && notDone.has(e.taskId) && !['progress', 'agent.state_changed'].includes(e.type))
          .map((e) => `${e.seq} ${e.at} ${e.type} ${JSON.stringify(e.data).slice(0, 400)}`);
        expect.fail(`run ${run} (seed ${SEED}) ended ${terminal.data}\n${story.join('\n')}`);
      }

      // Every task completed, the run completed.
      const taskRows = (await r.api<{ tasks: { id: string; key: string; status: string }[] }>(instance, 'GET', `/api/projects/${projectId}/tasks`)).body.tasks;
      expect(taskRows.map((t) => `${t.key}:${t.status}`).sort()).toEqual(tasks.map((t) => `${t.key}:completed`).sort());
      const runs = (await r.api<{ runs: { status: string }[] }>(instance, 'GET', `/api/projects/${projectId}/runs`)).body.runs;
      expect(runs.map((x) => x.status)).toEqual(['completed']);

      // The log: seqs strictly increasing, one terminal event per task and per run.
      const log = await fullLog(r, instance, projectId);
      const seqs = log.map((e) => e.seq);
      for (let n = 1; n < seqs.length; n++) expect(seqs[n]!, `seq after ${seqs[n - 1]}`).toBeGreaterThan(seqs[n - 1]!);
      expect(log.filter((e) => e.type === 'run.completed')).toHaveLength(1);
      const completions = log.filter((e) => e.type === 'task.status_changed' && e.data.to === 'completed').map((e) => e.data.key as string);
      expect(completions.sort()).toEqual(tasks.map((t) => t.key).sort());
      // The tests ran under bubblewrap, which is what promises nothing outlives a kill of the service.
      expect(new Set(log.filter((e) => e.type === 'test.result').map((e) => e.data.sandbox))).toEqual(new Set(['bwrap']));

      // What the client saw across the crashes (each stream resumed from its last id), and a stream
      // replayed from 0 now: both exactly the log, nothing lost, nothing twice.
      followed.push(...watcher.messages);
      watcher.close();
      const lastSeq = seqs.at(-1)!;
      const followedSeqs = followed.map((m) => Number(m.id)).filter((s) => s <= lastSeq);
      expect(followedSeqs).toEqual(seqs.filter((s) => s <= (followedSeqs.at(-1) ?? 0)));
      const replay = await sse(`${instance.url}/api/projects/${projectId}/events`);
      await deadline(replay.until((m) => Number(m.at(-1)?.id ?? 0) >= lastSeq), 20_000, () => `replay reached ${replay.lastId}, log ${lastSeq}`);
      replay.close();
      expect(replay.messages.map((m) => Number(m.id)).filter((s) => s <= lastSeq)).toEqual(seqs);

      // Pay once: per task, one llm.usage per attempt answered; no request for an attempt after its
      // answer was recorded; an answer that was never recorded went to a service killed before it could.
      const keyOf = new Map(taskRows.map((t) => [t.id, t.key]));
      for (const t of tasks) {
        const asked = r.model.requests.filter((q) => q.taskKey === t.key);
        const attempts = [...new Set(asked.filter((q) => q.answeredAt !== null).map((q) => q.attempt!))].sort((a, b) => a - b);
        const usage = log.filter((e) => e.type === 'llm.usage' && keyOf.get(e.taskId ?? '') === t.key);
        expect(usage.length, `${t.key}: llm.usage events for attempts ${attempts.join(',')}`).toBe(attempts.length);
        attempts.forEach((attempt, n) => {
          const recordedAt = Date.parse(usage[n]!.at);
          const same = asked.filter((q) => q.attempt === attempt);
          const late = same.filter((q) => q.receivedAt > recordedAt);
          expect(late.map((q) => `request ${q.n} at ${q.receivedAt}`), `${t.key}#${attempt} asked again after its answer was recorded at ${recordedAt}`).toEqual([]);
          const answered = same.filter((q) => q.answeredAt !== null);
          for (const q of answered.slice(0, -1)) {
            const life = lives.find((l) => l.startedAt <= q.answeredAt! && (l.killedAt === null || q.answeredAt! <= l.killedAt));
            expect(life?.killedAt, `${t.key}#${attempt}: request ${q.n} answered twice, the first to a live service`).not.toBeNull();
            lostInFlight++;
          }
        });
      }
      expect(r.model.requests.filter((q) => q.taskKey?.endsWith('-c') && q.attempt === 2 && q.answeredAt !== null).length).toBeGreaterThan(0);

      // One commit per task on the branch, the workspace clean.
      const workspace = (await r.api(instance, 'GET', `/api/projects/${projectId}`)).body.workspace as string;
      const git = (...args: string[]) => execFileSync('git', args, { cwd: workspace, encoding: 'utf8' }).trim();
      const subjects = git('log', '--format=%s').split('\n');
      expect(subjects.filter((s) => s !== 'troupe: initial commit').sort()).toEqual(tasks.map((t) => `${t.title} (${t.key})`).sort());
      expect(git('status', '--porcelain')).toBe('');

      await noOrphans(r.dataDir, [instance.child.pid!]);
      console.log(`run ${run} completed after ${killsThisRun} kill(s) in ${Date.now() - runStarted} ms (${log.length} events)`);
    }
    await crash(instance);
    await noOrphans(r.dataDir);
    const cutOff = r.model.requests.filter((q) => q.abortedAt !== null).length;
    console.log(
      `crash campaign: ${kills} kill -9 points survived in ${Date.now() - started} ms; ${cutOff} model call(s) cut off by a kill; ` +
        `${lostInFlight} answer(s) lost in flight to a kill and asked again (seed ${SEED})`,
    );
  });
});
