import { describe, expect, it } from 'vitest';
import { costOf, priceOf } from '../../../src/actors/model/prices.ts';
import { parseProposal } from '../../../src/actors/model/proposal.ts';
import { cutMiddle, workerUserMessage } from '../../../src/actors/model/prompts.ts';
import { DEFAULT_MODEL } from '../../../src/domain/inputs.ts';

describe('prices', () => {
  it('prices known models, dated ids by their alias, and refuses to guess', () => {
    expect(costOf('claude-sonnet-4-6', { inputTokens: 1_000_000, outputTokens: 1_000_000, cacheReadTokens: 1_000_000, cacheWriteTokens: 1_000_000 })).toBeCloseTo(3 + 15 + 0.3 + 3.75, 6);
    expect(priceOf('claude-haiku-4-5-20251001')).toEqual(priceOf('claude-haiku-4-5'));
    expect(priceOf('claude-opus-4-1-20250805')?.input).toBe(15);
    expect(priceOf('claude-opus-4-7')?.input).toBe(5);
    expect(costOf('my-private-model', { inputTokens: 1, outputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0 })).toBeNull();
    expect(costOf('claude-haiku-5-5', { inputTokens: 1, outputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0 })).toBeNull();
    // The model a project gets when it names none is always priced: its cost is never unknown.
    expect(priceOf(DEFAULT_MODEL)).not.toBeNull();
  });
});

describe('worker prompts', () => {
  it("carry the task's title and description verbatim, and on a correction the failing output cut from the middle", () => {
    const description = 'Implement `parse(input)`.\n\n  Keep   the spacing; <b>and</b> "quotes".';
    const excerpt = cutMiddle(`HEAD ${'x'.repeat(50_000)} TAIL`, 1000);
    const text = workerUserMessage({
      key: 'parse',
      title: 'Parser: the "core"',
      description,
      guidance: null,
      attempt: 2,
      maxAttempts: 4,
      workspaceView: '(empty)',
      testCommand: ['node', '--test'],
      failure: { kind: 'tests_failed', summary: '1 failed', excerpt },
      previousFiles: [{ path: 'lib/parse.js', action: 'create', content: 'module.exports = 1;' }],
    });
    expect(text).toContain('# Parser: the "core"');
    expect(text).toContain(description);
    expect(text).toContain('Attempt: 2 of 4');
    expect(text).toContain('--- lib/parse.js ---\nmodule.exports = 1;');
    expect(excerpt.startsWith('HEAD ')).toBe(true);
    expect(excerpt.endsWith(' TAIL')).toBe(true);
    expect(excerpt.length).toBeLessThanOrEqual(1000);
    expect(text).toContain('characters cut');
  });
});

describe('write_files answers', () => {
  const answer = (input: unknown, stop = 'tool_use') => ({ content: [{ type: 'tool_use' as const, id: 't', name: 'write_files', input, caller: undefined as never }], stop_reason: stop as 'tool_use' });

  it('accepts a valid proposal and explains what is wrong with an invalid one', () => {
    expect(parseProposal(answer({ files: [{ path: 'a.js', action: 'create', content: 'x' }, { path: 'b.js', action: 'delete' }], explanation: 'e' }))).toMatchObject({ ok: true });
    expect(parseProposal(answer({ files: [{ path: 'a.js', action: 'modify' }], explanation: 'e' }))).toMatchObject({ ok: false, reason: expect.stringContaining('content is required') as string });
    expect(parseProposal(answer({ files: [{ path: 'a.js', action: 'rename', content: '' }], explanation: 'e' }))).toMatchObject({ ok: false });
    expect(parseProposal({ content: [], stop_reason: 'max_tokens' })).toEqual({ ok: false, reason: 'the answer has no write_files call (the answer was cut off at max_tokens)' });
  });
});
