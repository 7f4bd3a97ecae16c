/**
 * Writes one effect starts and a later effect of the same job waits for: `files.applied` is
 * written while the tests already run (the write is the apply step's, its outcome the test
 * step's). The test result of that attempt is written only once it committed, so the two events
 * keep their order, and a failed write fails the test step as it would have failed the apply step.
 */
export class PendingWrites {
  private readonly writes = new Map<string, Promise<void>>();

  start(key: string, write: Promise<void>): void {
    this.writes.set(key, write);
    // Forgotten once committed; a failure stays for the step that waits (and is never an
    // unhandled rejection when the job ends before that step, a cancel).
    write.then(
      () => {
        if (this.writes.get(key) === write) this.writes.delete(key);
      },
      () => undefined,
    );
  }

  /** Waits for the write of `key`, if one is under way or failed (and forgets it). */
  async settle(key: string): Promise<void> {
    const write = this.writes.get(key);
    if (!write) return;
    this.writes.delete(key);
    await write;
  }
}
