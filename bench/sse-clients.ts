/**
 * A separate process holding N SSE clients of one event stream (so clients do not share the
 * server's event loop). Prints `ready` once every client has its response head, then, when all
 * clients have `expected` events, one JSON line: emit-to-receive latencies (receive time minus the
 * event's `at`) across all clients.
 *   usage: sse-clients.ts URL CLIENTS EXPECTED
 */
import { createParser } from 'eventsource-parser';

const [url, clientsArg, expectedArg] = process.argv.slice(2);
const clients = Number(clientsArg);
const expected = Number(expectedArg);
const latencies: number[] = [];
let done = 0;

async function client(): Promise<void> {
  const res = await fetch(url!, { headers: { accept: 'text/event-stream' } });
  let received = 0;
  const parser = createParser({
    onEvent(message) {
      if (!message.id) return;
      const { at } = JSON.parse(message.data) as { at: string };
      latencies.push(Date.now() - Date.parse(at));
      received += 1;
    },
  });
  const reader = res.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
  const decoder = new TextDecoder();
  heads += 1;
  if (heads === clients) process.stdout.write('ready\n');
  while (received < expected) {
    const { done: end, value } = await reader.read();
    if (end) throw new Error('stream ended early');
    parser.feed(decoder.decode(value, { stream: true }));
  }
  await reader.cancel();
  done += 1;
}

let heads = 0;
await Promise.all(Array.from({ length: clients }, () => client()));
latencies.sort((a, b) => a - b);
const pick = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
process.stdout.write(`${JSON.stringify({ clients: done, samples: latencies.length, p50: pick(0.5), p99: pick(0.99), max: latencies.at(-1) })}\n`);
