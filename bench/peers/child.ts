/**
 * One side of `bench/peers` in a process of its own (so its peak RSS is its own):
 * `node --import tsx bench/peers/child.ts <floor|troupe|langgraph> <database url>`, driven over
 * IPC by `index.ts`. Each `run` message runs one batch of loops and answers with its wall time,
 * the statements it sent and the tuples it wrote (counters flushed before and after).
 */
import { readFileSync } from 'node:fs';
import type { Tally } from './statements.ts';
import { rowsBetween, type Rows, type Side } from './work.ts';

export type SideName = 'floor' | 'troupe' | 'langgraph';

export type Request = { type: 'run'; round: number; tasks: number; concurrency: number } | { type: 'close' };
export type Reply =
  | { type: 'ready' }
  | { type: 'result'; ms: number; cpuMs: number; statements: number; detail?: Record<string, Tally>; rows: Rows; peakRssKiB: number }
  | { type: 'error'; message: string };

/** Each side loads only its own modules: the floor's RSS holds no Troupe or LangGraph code. */
const OPEN: Record<SideName, (url: string) => Promise<Side>> = {
  floor: async (url) => (await import('./floor.ts')).openFloor(url),
  troupe: async (url) => (await import('./troupe.ts')).openTroupe(url),
  langgraph: async (url) => (await import('./langgraph.ts')).openLanggraph(url),
};

/**
 * This process's peak RSS: `VmHWM` (Linux), which starts afresh at exec. (`getrusage`'s maxRSS
 * is kept across exec, so a child forked from a big parent would report the parent's size.)
 */
function peakRssKiB(): number {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]);
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS;
}

function send(reply: Reply): void {
  process.send?.(reply);
}

async function main(): Promise<void> {
  const [name, url] = process.argv.slice(2) as [SideName, string];
  const side = await OPEN[name](url);
  process.on('message', (message: Request) => {
    const handle = async () => {
      if (message.type === 'close') {
        await side.close();
        process.disconnect();
        return;
      }
      await side.prepare?.(message.round, message.tasks, message.concurrency);
      await side.flushStats();
      const before = await side.rows();
      const cpu = process.cpuUsage();
      const { ms, statements, detail } = await side.run(message.round, message.tasks, message.concurrency);
      const used = process.cpuUsage(cpu);
      await side.flushStats();
      const after = await side.rows();
      const rows = rowsBetween(before, after);
      send({ type: 'result', ms, cpuMs: (used.user + used.system) / 1000, statements, ...(detail ? { detail } : {}), rows, peakRssKiB: peakRssKiB() });
    };
    handle().catch((e: unknown) => send({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) }));
  });
  send({ type: 'ready' });
}

main().catch((e: unknown) => {
  send({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  process.exitCode = 1;
});
