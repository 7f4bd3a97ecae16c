/**
 * Task graphs for the benchmarks: layered random DAGs with a chosen width, and their critical
 * path. Deterministic for a seed, so two runs (or two sides of a comparison) get the same graph.
 */

export interface BenchTask {
  key: string;
  dependsOn: string[];
}

/** A small, fast, seedable PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `n` tasks in layers of `width`; each task after the first layer depends on 1–3 random tasks of
 * the layer before it. At most `width` tasks are ever ready at once.
 */
export function layeredDag(n: number, width: number, seed = 42): BenchTask[] {
  const random = rng(seed);
  const tasks: BenchTask[] = [];
  let previous: string[] = [];
  for (let layer = 0; tasks.length < n; layer++) {
    const current: string[] = [];
    for (let i = 0; i < width && tasks.length < n; i++) {
      const key = `t${layer}-${i}`;
      const deps = new Set<string>();
      if (previous.length > 0) {
        const count = 1 + Math.floor(random() * Math.min(3, previous.length));
        while (deps.size < count) deps.add(previous[Math.floor(random() * previous.length)]!);
      }
      tasks.push({ key, dependsOn: [...deps] });
      current.push(key);
    }
    previous = current;
  }
  return tasks;
}

/** Length (in tasks) of the longest dependency chain. */
export function criticalPath(tasks: BenchTask[]): number {
  const depth = new Map<string, number>();
  for (const t of tasks) depth.set(t.key, 1 + Math.max(0, ...t.dependsOn.map((d) => depth.get(d) ?? 0)));
  return Math.max(0, ...depth.values());
}
