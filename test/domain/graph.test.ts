import { describe, expect, it } from 'vitest';
import { checkGraph } from '../../src/domain/graph.ts';

const n = (key: string, ...dependsOn: string[]) => ({ key, dependsOn });

describe('task graph checks', () => {
  it('accepts a DAG, including dependencies on tasks already in the project', () => {
    expect(checkGraph([n('c', 'a', 'b'), n('d', 'c')], [n('a'), n('b', 'a')])).toBeNull();
  });

  it('reports a cycle with its path, closed on itself', () => {
    expect(checkGraph([n('a', 'b'), n('b', 'a')])).toMatchObject({ kind: 'cycle', path: ['a', 'b', 'a'], message: 'dependency cycle: a → b → a' });
    const long = checkGraph([n('x'), n('a', 'c'), n('b', 'a'), n('c', 'b')]);
    expect(long?.kind).toBe('cycle');
    expect(long?.message).toMatch(/^dependency cycle: (a → c → b → a|b → a → c → b|c → b → a → c)$/);
  });

  it('finds a cycle that closes through an existing task', () => {
    expect(checkGraph([n('b', 'a')], [n('a', 'b')])).toMatchObject({ kind: 'cycle', message: expect.stringMatching(/a → b → a|b → a → b/) as string });
    expect(checkGraph([n('new', 'old2')], [n('old1'), n('old2', 'old1')])).toBeNull();
  });

  it('reports unknown dependencies, self-dependencies and duplicate keys', () => {
    expect(checkGraph([n('a', 'ghost')])).toMatchObject({ kind: 'unknown_dependency', message: 'task "a" depends on unknown task "ghost"' });
    expect(checkGraph([n('a', 'a')])).toMatchObject({ kind: 'self_dependency' });
    expect(checkGraph([n('a'), n('a')])).toMatchObject({ kind: 'duplicate_key' });
    expect(checkGraph([n('a')], [n('a')])).toMatchObject({ kind: 'duplicate_key', message: 'task key "a" is used twice' });
  });

  it('handles a deep chain without recursion limits', () => {
    const chain = Array.from({ length: 20_000 }, (_, i) => n(`t${i}`, ...(i > 0 ? [`t${i - 1}`] : [])));
    expect(checkGraph(chain)).toBeNull();
    chain[0] = n('t0', 't19999');
    expect(checkGraph(chain)?.kind).toBe('cycle');
  });
});
