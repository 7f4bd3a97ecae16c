import { describe, expect, it } from 'vitest';
import { CappedOutput } from '../../../src/actors/testing/capped-output.ts';

const bytes = (text: string) => Buffer.from(text, 'utf8');

describe('CappedOutput', () => {
  it('decodes a multi-byte character split across chunks', () => {
    const out = new CappedOutput(1024);
    const euro = bytes('€'); // e2 82 ac
    out.push(euro.subarray(0, 1));
    out.push(euro.subarray(1));
    expect(out.finish()).toEqual({ text: '€', truncated: false });
    expect(out.totalBytes).toBe(3);
  });

  it('keeps everything up to exactly the limit', () => {
    const out = new CappedOutput(10);
    out.push(bytes('01234'));
    out.push(bytes('56789'));
    expect(out.finish()).toEqual({ text: '0123456789', truncated: false });
  });

  it('keeps the head and the latest tail, cut from the middle with a marker', () => {
    const out = new CappedOutput(10);
    for (const chunk of ['abc', 'defgh', 'ijklmnop', 'q', 'rstuvwxyz']) out.push(bytes(chunk));
    expect(out.finish()).toEqual({ text: 'abcde\n… [16 bytes omitted] …\nvwxyz', truncated: true });
    expect(out.totalBytes).toBe(26);
  });

  it('trims a single chunk larger than the whole limit', () => {
    const out = new CappedOutput(4);
    out.push(bytes('0123456789'));
    expect(out.finish().text).toBe('01\n… [6 bytes omitted] …\n89');
  });

  it('replaces invalid bytes instead of throwing', () => {
    const out = new CappedOutput(16);
    out.push(Buffer.from([0xff, 0xfe, 0x41]));
    expect(out.finish().text).toBe('\uFFFD\uFFFDA');
  });
});
