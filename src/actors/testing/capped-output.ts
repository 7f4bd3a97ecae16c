/**
 * A byte sink that keeps the head and a rolling tail of a stream, so a test command that floods
 * gigabytes costs at most about `maxBytes` (plus one pipe chunk) of memory.
 *
 * Bytes are kept raw and decoded once at the end: decoding chunk by chunk would turn every
 * multi-byte character split across two pipe reads into two replacement characters.
 */
export class CappedOutput {
  private readonly headLimit: number;
  private readonly tailLimit: number;
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private readonly tail: Buffer[] = [];
  private tailBytes = 0;
  private total = 0;

  constructor(maxBytes: number) {
    const max = Math.max(0, Math.floor(maxBytes));
    this.headLimit = Math.floor(max / 2);
    this.tailLimit = max - this.headLimit;
  }

  /** Total bytes seen, kept or not. */
  get totalBytes(): number {
    return this.total;
  }

  /** Appends one chunk. Never throws. */
  push(chunk: Buffer): void {
    this.total += chunk.length;
    let rest = chunk;
    if (this.headBytes < this.headLimit) {
      const take = Math.min(this.headLimit - this.headBytes, rest.length);
      // Copy: a subarray would pin the whole (possibly pooled) chunk for the life of the run.
      this.head.push(Buffer.from(rest.subarray(0, take)));
      this.headBytes += take;
      rest = rest.subarray(take);
    }
    if (rest.length === 0 || this.tailLimit === 0) return;
    if (rest.length > this.tailLimit) rest = rest.subarray(rest.length - this.tailLimit);
    this.tail.push(rest);
    this.tailBytes += rest.length;
    // Drop whole chunks from the front while what remains still fills the tail; the final trim to
    // exactly `tailLimit` happens once, in `finish`.
    let first = this.tail[0];
    while (first !== undefined && this.tailBytes - first.length >= this.tailLimit) {
      this.tail.shift();
      this.tailBytes -= first.length;
      first = this.tail[0];
    }
  }

  /**
   * Decodes what was kept as UTF-8 (invalid bytes become U+FFFD). When bytes were dropped, the
   * head and tail are decoded separately and joined by a marker line naming how many were omitted.
   */
  finish(): { text: string; truncated: boolean } {
    const decoder = new TextDecoder('utf-8', { fatal: false });
    const head = Buffer.concat(this.head);
    let tail = Buffer.concat(this.tail);
    if (tail.length > this.tailLimit) tail = tail.subarray(tail.length - this.tailLimit);
    const omitted = this.total - head.length - tail.length;
    if (omitted <= 0) {
      return { text: decoder.decode(Buffer.concat([head, tail])), truncated: false };
    }
    const text = `${decoder.decode(head)}\n… [${omitted} bytes omitted] …\n${decoder.decode(tail)}`;
    return { text, truncated: true };
  }
}
