/**
 * One queue per key: `lock(key)(fn)` runs `fn` after every earlier `fn` for that key settled.
 * Used for merges into a project's workspace branch and for git worktree administration
 * (within one process: a run is executed by one process).
 */
export function createKeyedMutex(): (key: string) => <T>(fn: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<unknown>>();
  return (key) =>
    <T>(fn: () => Promise<T>): Promise<T> => {
      const previous = tails.get(key) ?? Promise.resolve();
      const run = previous.then(fn, fn);
      const tail = run.catch(() => undefined);
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
      return run;
    };
}
