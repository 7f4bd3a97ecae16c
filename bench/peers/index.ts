/**
 * Troupe beside a peer on the same work: one agent loop per task (see `work.ts`) run by (a) the
 * floor, a plain async pool writing one row per step (`floor.ts`); (b) Troupe, its machines and
 * persistence path (`troupe.ts`); (c) LangGraph.js with its Postgres checkpointer
 * (`langgraph.ts`). Same Postgres (a fresh database, dropped after), same pool size, the same
 * number of loops in flight; each side in its own child process. A warm-up batch each, then
 * `rounds` alternating batches (floor, Troupe, LangGraph, floor, …); the median of each counts.
 */
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import type { Reply, Request, SideName } from './child.ts';
import type { Tally } from './statements.ts';
import { STEPS } from './work.ts';

/** As `harness.ts` says (not imported: it loads the whole runtime into this process). */
const ADMIN_URL = process.env.TROUPE_BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));
export const SIDES: readonly SideName[] = ['floor', 'troupe', 'langgraph'];

export interface SideFigures {
  /** Median over the rounds. */
  usPerStep: number;
  usPerStepRuns: number[];
  /** This process's CPU time (user + system) per step, median: the side's own work, whatever the machine's load. */
  cpuUsPerStep: number;
  statementsPerTask: number;
  rowsPerTask: number;
  /** Of `rowsPerTask`: inserted, updated, deleted tuples per task. */
  insertedPerTask: number;
  updatedPerTask: number;
  deletedPerTask: number;
  peakRssMiB: number;
  /** Tuples written per task, by table (mean over the rounds). */
  rowsPerTaskByTable: Record<string, number>;
  /** Statements per task and their parameter bytes, by kind (mean over the rounds; Troupe only). */
  statementsPerTaskByKind?: Record<string, Tally>;
}

export interface PeersResult {
  tasks: number;
  steps: number;
  concurrency: number;
  rounds: number;
  /** `os.loadavg()` (1, 5, 15 min) before and after. */
  loadBefore: number[];
  loadAfter: number[];
  sides: Record<SideName, SideFigures>;
  /** Each side ÷ the floor. */
  ratios: Record<SideName, { usPerStep: number; cpuPerStep: number; statementsPerTask: number; rowsPerTask: number; peakRss: number }>;
  troupeVsLanggraph: number;
}

type Result = Extract<Reply, { type: 'result' }>;

class Child {
  private readonly proc: ChildProcess;
  private waiting: ((reply: Reply) => void) | null = null;
  private early: Reply[] = [];
  private exited: string | null = null;

  constructor(name: SideName, url: string) {
    this.proc = fork(CHILD, [name, url], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.proc.on('message', (reply: Reply) => {
      if (this.waiting) this.waiting(reply);
      else this.early.push(reply);
    });
    this.proc.once('exit', (code, signal) => {
      this.exited = `${name} exited (${code ?? signal})`;
      this.waiting?.({ type: 'error', message: this.exited });
    });
  }

  next(): Promise<Reply> {
    const queued = this.early.shift();
    if (queued) return Promise.resolve(queued);
    if (this.exited) return Promise.resolve({ type: 'error', message: this.exited });
    return new Promise((resolve) => {
      this.waiting = (reply) => {
        this.waiting = null;
        resolve(reply);
      };
    });
  }

  async ask(request: Request): Promise<Result> {
    this.proc.send(request);
    return expect(await this.next());
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
    this.proc.send({ type: 'close' } satisfies Request);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
  }
}

function expect(reply: Reply): Result {
  if (reply.type === 'error') throw new Error(reply.message);
  if (reply.type !== 'result') throw new Error(`unexpected ${reply.type}`);
  return reply;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export async function peers(tasks: number, rounds: number, concurrency = 8): Promise<PeersResult> {
  const name = `troupe_peers_${process.pid}`;
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`drop database if exists ${name} with (force)`);
  await admin.unsafe(`create database ${name}`);
  const url = ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
  const children = new Map<SideName, Child>();
  const loadBefore = os.loadavg().map((l) => round(l));
  try {
    for (const side of SIDES) children.set(side, new Child(side, url));
    for (const [side, child] of children) {
      const ready = await child.next();
      if (ready.type !== 'ready') throw new Error(`${side}: ${ready.type === 'error' ? ready.message : ready.type}`);
    }
    // Warm-up: JIT, prepared statements, pools connected; not counted.
    for (const side of SIDES) await children.get(side)!.ask({ type: 'run', round: 0, tasks, concurrency });
    const runs = new Map<SideName, Result[]>(SIDES.map((s) => [s, []]));
    for (let r = 1; r <= rounds; r++) {
      for (const side of SIDES) runs.get(side)!.push(await children.get(side)!.ask({ type: 'run', round: r, tasks, concurrency }));
    }
    const sides = Object.fromEntries(SIDES.map((s) => [s, figures(runs.get(s)!, tasks)])) as Record<SideName, SideFigures>;
    const floor = sides.floor;
    const ratio = (a: number, b: number) => (b > 0 ? round(a / b, 2) : 0);
    const ratios = Object.fromEntries(
      SIDES.map((s) => [
        s,
        {
          usPerStep: ratio(sides[s].usPerStep, floor.usPerStep),
          cpuPerStep: ratio(sides[s].cpuUsPerStep, floor.cpuUsPerStep),
          statementsPerTask: ratio(sides[s].statementsPerTask, floor.statementsPerTask),
          rowsPerTask: ratio(sides[s].rowsPerTask, floor.rowsPerTask),
          peakRss: ratio(sides[s].peakRssMiB, floor.peakRssMiB),
        },
      ]),
    ) as PeersResult['ratios'];
    return {
      tasks,
      steps: STEPS,
      concurrency,
      rounds,
      loadBefore,
      loadAfter: os.loadavg().map((l) => round(l)),
      sides,
      ratios,
      troupeVsLanggraph: ratio(sides.troupe.usPerStep, sides.langgraph.usPerStep),
    };
  } finally {
    await Promise.all([...children.values()].map((c) => c.close().catch(() => undefined)));
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}

function figures(runs: Result[], tasks: number): SideFigures {
  const per = (f: (r: Result) => number) => round(median(runs.map(f)) / tasks, 1);
  const usPerStepRuns = runs.map((r) => round((r.ms * 1000) / (tasks * STEPS), 1));
  return {
    usPerStep: round(median(usPerStepRuns), 1),
    usPerStepRuns,
    cpuUsPerStep: round(median(runs.map((r) => (r.cpuMs * 1000) / (tasks * STEPS))), 1),
    statementsPerTask: per((r) => r.statements),
    rowsPerTask: per((r) => r.rows.inserted + r.rows.updated + r.rows.deleted),
    insertedPerTask: per((r) => r.rows.inserted),
    updatedPerTask: per((r) => r.rows.updated),
    deletedPerTask: per((r) => r.rows.deleted),
    peakRssMiB: round(Math.max(...runs.map((r) => r.peakRssKiB)) / 1024, 1),
    rowsPerTaskByTable: meanPerTask(runs.map((r) => r.rows.byTable), tasks),
    ...(runs[0]?.detail ? { statementsPerTaskByKind: kindsPerTask(runs, tasks) } : {}),
  };
}

function meanPerTask(maps: Record<string, number>[], tasks: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of maps) for (const [k, n] of Object.entries(m)) out[k] = (out[k] ?? 0) + n;
  for (const k of Object.keys(out)) out[k] = round(out[k]! / (maps.length * tasks), 2);
  return out;
}

function kindsPerTask(runs: Result[], tasks: number): Record<string, Tally> {
  const count = meanPerTask(runs.map((r) => Object.fromEntries(Object.entries(r.detail ?? {}).map(([k, t]) => [k, t.count]))), tasks);
  const bytes = meanPerTask(runs.map((r) => Object.fromEntries(Object.entries(r.detail ?? {}).map(([k, t]) => [k, t.bytes]))), tasks);
  const kinds = Object.keys(count).sort((a, b) => (bytes[b] ?? 0) - (bytes[a] ?? 0) || count[b]! - count[a]!);
  return Object.fromEntries(kinds.map((k) => [k, { count: count[k]!, bytes: Math.round(bytes[k] ?? 0) }]));
}

/** The rows of `npm run bench`'s table: each side's figures and their ratio to the floor. */
export function peersRows(r: PeersResult) {
  const size = `${r.tasks} loops × ${r.steps} steps, ${r.concurrency} in flight, median of ${r.rounds}, load ${r.loadBefore.join('/')}`;
  const row = (figure: string, value: number, unit: string, target = '—', holds: boolean | null = null) => ({ benchmark: 'peers', db: 'postgres' as const, size, figure, value, unit, target, holds });
  return [
    ...SIDES.flatMap((side) => {
      const f = r.sides[side];
      const x = r.ratios[side];
      return [
        side === 'troupe' ? row(`${side}: per step (${x.usPerStep} × floor)`, f.usPerStep, 'µs', '≤ 1.5 × floor', x.usPerStep <= 1.5) : row(`${side}: per step (${x.usPerStep} × floor)`, f.usPerStep, 'µs'),
        row(`${side}: CPU of its process per step (${x.cpuPerStep} × floor)`, f.cpuUsPerStep, 'µs'),
        row(`${side}: statements per task (${x.statementsPerTask} × floor)`, f.statementsPerTask, ''),
        row(`${side}: rows written per task (${x.rowsPerTask} × floor)`, f.rowsPerTask, ''),
        row(`${side}: peak RSS (${x.peakRss} × floor)`, f.peakRssMiB, 'MiB'),
      ];
    }),
    row('troupe ÷ langgraph, per step', r.troupeVsLanggraph, '×', '≤ 0.25', r.troupeVsLanggraph <= 0.25),
  ];
}
