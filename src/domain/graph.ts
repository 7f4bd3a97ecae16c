/**
 * Task-graph checks shared by `POST /tasks`, plan files and the lead's own plans.
 */

export interface GraphNode {
  key: string;
  dependsOn: readonly string[];
}

export type GraphProblem =
  | { kind: 'duplicate_key'; key: string; message: string }
  | { kind: 'unknown_dependency'; key: string; dependency: string; message: string }
  | { kind: 'self_dependency'; key: string; message: string }
  | { kind: 'cycle'; path: string[]; message: string };

/**
 * Checks `added` against the tasks that already exist (`existing`, already acyclic): keys
 * unique, every dependency known, no cycle. The first problem found, or null.
 */
export function checkGraph(added: readonly GraphNode[], existing: readonly GraphNode[] = []): GraphProblem | null {
  const known = new Map<string, readonly string[]>();
  for (const n of existing) known.set(n.key, n.dependsOn);
  const seen = new Set<string>();
  for (const n of added) {
    if (known.has(n.key) || seen.has(n.key)) return { kind: 'duplicate_key', key: n.key, message: `task key "${n.key}" is used twice` };
    seen.add(n.key);
  }
  for (const n of added) known.set(n.key, n.dependsOn);
  for (const n of added) {
    for (const d of n.dependsOn) {
      if (d === n.key) return { kind: 'self_dependency', key: n.key, message: `task "${n.key}" depends on itself` };
      if (!known.has(d)) return { kind: 'unknown_dependency', key: n.key, dependency: d, message: `task "${n.key}" depends on unknown task "${d}"` };
    }
  }
  const path = findCycle(known);
  return path ? { kind: 'cycle', path, message: `dependency cycle: ${path.join(' → ')}` } : null;
}

/** A cycle as a closed path (`a → b → a`), or null. Iterative DFS: graphs may be deep. */
export function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | null {
  const state = new Map<string, 'visiting' | 'done'>();
  for (const start of graph.keys()) {
    if (state.has(start)) continue;
    const stack: { key: string; next: number }[] = [{ key: start, next: 0 }];
    state.set(start, 'visiting');
    while (stack.length > 0) {
      const top = stack.at(-1)!;
      const deps = graph.get(top.key) ?? [];
      if (top.next >= deps.length) {
        state.set(top.key, 'done');
        stack.pop();
        continue;
      }
      const dep = deps[top.next++]!;
      const s = state.get(dep);
      if (s === 'visiting') {
        const from = stack.findIndex((f) => f.key === dep);
        return [...stack.slice(from).map((f) => f.key), dep];
      }
      if (s === undefined && graph.has(dep)) {
        state.set(dep, 'visiting');
        stack.push({ key: dep, next: 0 });
      }
    }
  }
  return null;
}
