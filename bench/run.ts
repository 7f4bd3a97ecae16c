/**
 * `npm run bench`: every benchmark, on PGlite and on Postgres, at two sizes; a table with each
 * figure, its target and whether it holds; the figures as JSON. `--smoke` runs tiny sizes (what
 * `npm test` does, so the harness cannot rot); `--only=overhead,scheduling,throughput,fanout,footprint,badinput,startup,peers`;
 * `--db=pglite|postgres`; `--out=FILE`.
 */
import { writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { badInput } from './bad-input.ts';
import { fanout, throughput } from './events.ts';
import { footprint } from './footprint.ts';
import { ADMIN_URL, round, type DbKind } from './harness.ts';
import { overhead } from './overhead.ts';
import { peers, peersRows } from './peers/index.ts';
import { SCHEDULING_TARGET, scheduling } from './scheduling.ts';
import { startup } from './startup.ts';

interface Row {
  benchmark: string;
  db: DbKind | '-';
  size: string;
  figure: string;
  value: number;
  unit: string;
  target: string;
  holds: boolean | null;
}

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string | undefined]));
const smoke = args.has('smoke');
const BENCHMARKS = ['overhead', 'scheduling', 'throughput', 'fanout', 'footprint', 'badinput', 'startup', 'peers'] as const;
const only = new Set((args.get('only') ?? BENCHMARKS.join(',')).split(','));
for (const name of only) {
  if (!(BENCHMARKS as readonly string[]).includes(name)) {
    console.error(`unknown benchmark "${name}": choose from ${BENCHMARKS.join(', ')}`);
    process.exit(2);
  }
}
const out = args.get('out') ?? (smoke ? path.join(os.tmpdir(), 'troupe-bench-smoke.json') : fileURLToPath(new URL('./results/latest.json', import.meta.url)));

const SIZES = smoke
  ? { overhead: [[12, 4]], scheduling: [[8, 2, 2, 20]], throughput: [[200, 1], [1000, 100]], fanout: [[5, 100, 1]], footprint: [50, 40], badinput: 5, startup: 1, peers: [8, 1] }
  : { overhead: [[100, 32], [500, 32]], scheduling: [[20, 4, 4, 200], [40, 4, 4, 200], [20, 4, 4, 1000]], throughput: [[2000, 1], [10000, 100]], fanout: [[50, 1000, 3], [100, 1000, 3]], footprint: [1000, 500], badinput: 50, startup: 5, peers: [200, 5] };

async function postgresReachable(): Promise<boolean> {
  const sql = postgres(ADMIN_URL, { max: 1, connect_timeout: 3, onnotice: () => undefined });
  try {
    await sql`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

async function main(): Promise<void> {
  const wanted = (args.get('db') ?? 'pglite,postgres').split(',') as DbKind[];
  const dbs: DbKind[] = [];
  for (const db of wanted) {
    if (db === 'postgres' && !(await postgresReachable())) {
      console.error(`Postgres is not reachable at ${ADMIN_URL}: skipping its runs (set TROUPE_BENCH_ADMIN_URL)`);
      continue;
    }
    dbs.push(db);
  }
  const rows: Row[] = [];
  const results: Record<string, unknown[]> = { overhead: [], scheduling: [], throughput: [], fanout: [], footprint: [], badinput: [], startup: [], peers: [] };
  const log = (s: string) => console.error(`… ${s}`);

  for (const db of dbs) {
    for (const [n, width] of only.has('overhead') ? (SIZES.overhead as [number, number][]) : []) {
      log(`overhead ${db} ${n} tasks`);
      const r = await overhead(db, n, width, smoke ? 1 : 2);
      results.overhead!.push(r);
      rows.push({ benchmark: 'overhead', db, size: `${n} tasks, width ${width}`, figure: 'Troupe / baseline wall time', value: r.ratio, unit: '×', target: '≤ 1.3', holds: r.ratio <= 1.3 });
      rows.push({ benchmark: 'overhead', db, size: `${n} tasks, width ${width}`, figure: 'runtime overhead per task', value: r.overheadPerTaskMs, unit: 'ms', target: '—', holds: null });
    }
    for (const [n, width, concurrency, latency] of only.has('scheduling') ? (SIZES.scheduling as [number, number, number, number][]) : []) {
      log(`scheduling ${db} ${n} tasks`);
      const r = await scheduling(db, n, width, concurrency, latency);
      results.scheduling!.push(r);
      rows.push({ benchmark: 'scheduling', db, size: `${n} tasks, c=${concurrency}, ${latency} ms`, figure: 'makespan / lower bound', value: r.ratio, unit: '×', target: `≤ ${SCHEDULING_TARGET[db]}`, holds: r.ratio <= SCHEDULING_TARGET[db] });
    }
    for (const [n, perTx] of only.has('throughput') ? (SIZES.throughput as [number, number][]) : []) {
      log(`throughput ${db} ${n}/${perTx}`);
      const r = await throughput(db, n, perTx);
      results.throughput!.push(r);
      const target = perTx === 1 ? 250 : 5000;
      rows.push({ benchmark: 'events', db, size: `${n} events, ${perTx}/tx`, figure: 'appended + published', value: r.eventsPerSecond, unit: '/s', target: `≥ ${target}`, holds: r.eventsPerSecond >= target });
    }
    for (const [clients, rate, seconds] of only.has('fanout') ? (SIZES.fanout as [number, number, number][]) : []) {
      log(`fan-out ${db} ${clients} clients`);
      const r = await fanout(db, clients, rate, seconds);
      results.fanout!.push(r);
      rows.push({ benchmark: 'events', db, size: `${clients} SSE clients, ${rate}/s`, figure: 'emit → receive p50', value: r.p50Ms, unit: 'ms', target: '—', holds: null });
      rows.push({ benchmark: 'events', db, size: `${clients} SSE clients, ${rate}/s`, figure: 'emit → receive p99', value: r.p99Ms, unit: 'ms', target: '< 50', holds: r.p99Ms < 50 });
    }
    if (only.has('badinput')) {
      log(`bad input ${db}`);
      // The CLI figure does not depend on the database: measured once, on the first.
      const r = await badInput(db, SIZES.badinput, db === dbs[0]);
      results.badinput!.push(r);
      const size = `${r.rounds} requests each, HTTP on loopback`;
      rows.push({ benchmark: 'bad input', db, size, figure: 'GET /health p50 (reference)', value: r.healthP50Ms, unit: 'ms', target: '—', holds: null });
      for (const c of r.cases) rows.push({ benchmark: 'bad input', db, size, figure: `${c.status} ${c.kind}: p99 (max ${c.maxMs})`, value: c.p99Ms, unit: 'ms', target: '< 100', holds: c.maxMs < 100 });
      if (r.cli) {
        rows.push({ benchmark: 'bad input', db: '-', size: 'troupe run, child process', figure: 'plan with an unknown dependency refused (exit 2)', value: r.cli.refusedMs, unit: 'ms', target: '—', holds: null });
        rows.push({ benchmark: 'bad input', db: '-', size: 'troupe run, child process', figure: 'troupe --help (the CLI start alone)', value: r.cli.helpMs, unit: 'ms', target: '—', holds: null });
      }
    }
  }
  if (only.has('footprint')) {
    const [actors, leadTasks] = SIZES.footprint as [number, number];
    log(`footprint ${actors} actors`);
    const r = await footprint(actors, leadTasks);
    results.footprint!.push(r);
    const size = `${actors} actors`;
    rows.push({ benchmark: 'footprint', db: '-', size, figure: 'heap per idle worker', value: round(r.idleWorkerBytes / 1024, 1), unit: 'KiB', target: '≤ 16', holds: r.idleWorkerBytes <= 16 * 1024 });
    rows.push({ benchmark: 'footprint', db: '-', size, figure: 'heap per in-flight task', value: round(r.inFlightTaskBytes / 1024, 1), unit: 'KiB', target: '≤ 32', holds: r.inFlightTaskBytes <= 32 * 1024 });
    rows.push({ benchmark: 'footprint', db: '-', size, figure: 'busy worker snapshot', value: round(r.busyWorkerSnapshotBytes / 1024, 2), unit: 'KiB', target: '≤ 4', holds: r.busyWorkerSnapshotBytes <= 4 * 1024 });
    rows.push({
      benchmark: 'footprint',
      db: '-',
      size: `lead, ${r.leadTasks} tasks, ${r.leadWorkers} workers`,
      figure: 'lead snapshot',
      value: round(r.leadSnapshotBytes / 1024, 1),
      unit: 'KiB',
      target: '≤ 512',
      holds: r.leadSnapshotBytes <= 512 * 1024,
    });
  }

  if (only.has('startup')) {
    log('start-up');
    const r = await startup(SIZES.startup);
    results.startup!.push(r);
    const size = `median of ${r.rounds}, PGlite, child processes`;
    rows.push({ benchmark: 'start-up', db: '-', size, figure: 'node -e 0 (the floor)', value: r.nodeMs, unit: 'ms', target: '—', holds: null });
    rows.push({ benchmark: 'start-up', db: '-', size, figure: 'troupe --help', value: r.helpMs, unit: 'ms', target: '≤ 500', holds: r.helpMs <= 500 });
    rows.push({ benchmark: 'start-up', db: 'pglite', size, figure: 'serve → first /health, new data dir', value: r.healthNewMs, unit: 'ms', target: '—', holds: null });
    rows.push({ benchmark: 'start-up', db: 'pglite', size, figure: 'serve → first /health, existing data dir', value: r.healthExistingMs, unit: 'ms', target: '≤ 1500', holds: r.healthExistingMs <= 1500 });
  }

  if (only.has('peers') && dbs.includes('postgres')) {
    const [tasks, rounds] = SIZES.peers as [number, number];
    log(`peers ${tasks} tasks`);
    const r = await peers(tasks, rounds);
    results.peers!.push(r);
    rows.push(...peersRows(r));
  }

  printTable(rows);
  const machine = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', memoryGiB: round(os.totalmem() / 2 ** 30, 1), node: process.version, platform: `${os.type()} ${os.release()}` };
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify({ at: new Date().toISOString(), smoke, machine, rows, results }, null, 2)}\n`);
  console.log(`\nfigures written to ${out}`);
  if (!smoke) printGrowth(results);
}

function printTable(rows: Row[]): void {
  const head = ['benchmark', 'db', 'size', 'figure', 'value', 'target', 'holds'];
  const cells = rows.map((r) => [r.benchmark, r.db, r.size, r.figure, `${r.value} ${r.unit}`, r.target, r.holds === null ? '' : r.holds ? 'yes' : 'NO']);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => x.padEnd(widths[i]!)).join('  ');
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(line(c));
}

/** How cost grows with size: the slope between the two sizes of benchmarks 1, 2 and 3. */
function printGrowth(results: Record<string, unknown[]>): void {
  console.log('\ngrowth between the two sizes:');
  const pairs = <T>(list: T[], db: DbKind) => list.filter((r) => (r as { db: DbKind }).db === db);
  for (const db of ['pglite', 'postgres'] as DbKind[]) {
    const o = pairs(results.overhead as { tasks: number; troupeMs: number; overheadPerTaskMs: number; db: DbKind }[], db);
    if (o.length === 2) console.log(`  overhead ${db}: ${o[0]!.tasks}→${o[1]!.tasks} tasks, wall ${o[0]!.troupeMs}→${o[1]!.troupeMs} ms (${round((o[1]!.troupeMs - o[0]!.troupeMs) / (o[1]!.tasks - o[0]!.tasks), 1)} ms per extra task), overhead per task ${o[0]!.overheadPerTaskMs}→${o[1]!.overheadPerTaskMs} ms`);
    const s = pairs(results.scheduling as { tasks: number; ratio: number; makespanMs: number; latencyMs: number; db: DbKind }[], db).filter((r) => r.latencyMs === 200);
    if (s.length === 2) console.log(`  scheduling ${db}: ${s[0]!.tasks}→${s[1]!.tasks} tasks, makespan ${s[0]!.makespanMs}→${s[1]!.makespanMs} ms, ratio ${s[0]!.ratio}→${s[1]!.ratio}`);
    const f = pairs(results.fanout as { clients: number; p99Ms: number; p50Ms: number; db: DbKind }[], db);
    if (f.length === 2) console.log(`  fan-out ${db}: ${f[0]!.clients}→${f[1]!.clients} clients, p50 ${f[0]!.p50Ms}→${f[1]!.p50Ms} ms, p99 ${f[0]!.p99Ms}→${f[1]!.p99Ms} ms`);
  }
}

await main();
process.exit(0);
