/**
 * Where Troupe's statements go: each statement its driver sends, by kind (the table it writes or
 * reads, BEGIN/COMMIT, the lease fence, the event append), with the bytes of its parameters.
 */

export interface Tally {
  count: number;
  /** Bytes of the statement's parameters (JSON of snapshots and events included). */
  bytes: number;
}

export function kindOf(query: string): string {
  const q = query.trim().replace(/\s+/g, ' ').toLowerCase();
  if (q === 'begin' || q.startsWith('begin ')) return 'begin';
  if (q === 'commit' || q === 'rollback') return q;
  if (q.startsWith('with lock as (select pg_advisory_xact_lock')) return 'event append (global lock, insert, notify)';
  if (/^select "owner" from "runs" .* for no key update/.test(q)) return 'lease fence (select runs … for no key update)';
  const write = /^(insert into|update|delete from) "?([a-z_]+)"?/.exec(q);
  if (write) return `${write[1]} ${write[2]}`;
  const read = /^select .*? from "?([a-z_]+)"?/.exec(q);
  if (read) return `select ${read[1]}${/ for (no key )?update$| for update of/.test(q) ? ' for update' : ''}`;
  return q.slice(0, 40);
}

function byteSize(p: unknown): number {
  if (typeof p === 'string') return p.length;
  if (p instanceof Uint8Array) return p.byteLength;
  if (typeof p === 'number' || typeof p === 'bigint' || typeof p === 'boolean') return String(p).length;
  if (p instanceof Date) return 8;
  return p === null || p === undefined ? 0 : JSON.stringify(p).length;
}

const bytesOf = (params: readonly unknown[]) => params.reduce<number>((n, p) => n + byteSize(p), 0);

export class StatementTally {
  total = 0;
  private readonly kinds = new Map<string, Tally>();

  add(query: string, params: readonly unknown[]): void {
    this.total++;
    const kind = kindOf(query);
    const t = this.kinds.get(kind) ?? { count: 0, bytes: 0 };
    t.count++;
    t.bytes += bytesOf(params);
    this.kinds.set(kind, t);
  }

  /** Counts since `mark()`, per kind. */
  since(mark: Map<string, Tally>): Record<string, Tally> {
    const out: Record<string, Tally> = {};
    for (const [kind, t] of this.kinds) {
      const before = mark.get(kind) ?? { count: 0, bytes: 0 };
      if (t.count > before.count) out[kind] = { count: t.count - before.count, bytes: t.bytes - before.bytes };
    }
    return out;
  }

  mark(): Map<string, Tally> {
    return new Map([...this.kinds].map(([k, t]) => [k, { ...t }]));
  }
}
