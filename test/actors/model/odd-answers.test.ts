/**
 * Hostile characters in model answers and the text around them: what is refused (with which
 * reason) before anything is written, and how text is made safe to store and quote.
 */
import { describe, expect, it } from 'vitest';
import { parseProposal } from '../../../src/actors/model/proposal.ts';
import { workerUserMessage } from '../../../src/actors/model/prompts.ts';
import { createTasksInput, describeIssues } from '../../../src/actors/model/tools.ts';
import { decodeAnswer, encodeAnswer } from '../../../src/actors/runtime/answer-codec.ts';
import { safeReason } from '../../../src/errors.ts';
import { hasUnstorableStrings, shortText, storableText, unstorableIn } from '../../../src/safe-text.ts';

const answer = (files: unknown[]) => ({
  content: [{ type: 'tool_use' as const, id: 't', name: 'write_files', input: { files, explanation: 'e \u0000' }, caller: undefined as never }],
  stop_reason: 'tool_use' as const,
});

describe('write_files answers with NUL or lone surrogates', () => {
  it('refuse NUL in content and paths, and lone surrogates, naming the file with the NUL made visible', () => {
    expect(parseProposal(answer([{ path: 'lib/a.js', action: 'create', content: 'ab\u0000c' }]))).toEqual({
      ok: false,
      reason:
        'invalid write_files input: file content contains NUL bytes (lib/a.js, the first at character 2): files are written as text; write binary data as escape sequences such as \\0 in the source',
    });
    expect(parseProposal(answer([{ path: 'lib/a\u0000.js', action: 'create', content: 'x' }]))).toEqual({
      ok: false,
      reason: 'invalid write_files input: path contains a NUL byte (lib/a\u2400.js)',
    });
    expect(parseProposal(answer([{ path: 'lib/\ud800.js', action: 'delete' }]))).toMatchObject({ ok: false, reason: expect.stringContaining('lone surrogate (lib/\ufffd.js)') as string });
    expect(parseProposal(answer([{ path: 'b.txt', action: 'modify', content: 'x \udc00' }]))).toMatchObject({
      ok: false,
      reason: expect.stringContaining('file content is not valid Unicode (b.txt, a lone surrogate at character 2)') as string,
    });
  });

  it('accept well-formed text, surrogate pairs included, and an explanation with NUL (it is never written)', () => {
    expect(parseProposal(answer([{ path: 'emoji/😀.txt', action: 'create', content: 'pair 😀 and escapes \\0 \\u0000' }]))).toMatchObject({ ok: true });
  });
});

describe('create_tasks answers', () => {
  it('refuse NUL in a title or description, and malformed dependency keys', () => {
    const parsed = createTasksInput.safeParse({
      tasks: [{ key: 'a', title: 'A\u0000', description: 'fine', agentType: 'backend', dependsOn: ['b\u0000'] }],
    });
    expect(parsed.success).toBe(false);
    const issues = describeIssues(parsed.error!);
    expect(issues).toContain('tasks.0.title: must not contain NUL or a lone surrogate');
    expect(issues).toContain('tasks.0.dependsOn.0');
    expect(issues).not.toContain('\u0000');
  });
});

describe('safe text', () => {
  it('finds NUL and lone surrogates, never a surrogate pair', () => {
    expect(unstorableIn('plain 😀')).toBeNull();
    expect(unstorableIn('a\u0000b\ud800')).toEqual({ kind: 'nul', index: 1 });
    expect(unstorableIn('a\udfffb\u0000')).toEqual({ kind: 'surrogate', index: 1 });
    expect(storableText('a\u0000b\ud800c😀')).toBe('a\u2400b\ufffdc😀');
    expect(hasUnstorableStrings({ a: [{ b: 'fine' }], c: 'x' })).toBe(false);
    expect(hasUnstorableStrings({ a: [{ b: 'no\u0000' }] })).toBe(true);
    expect(hasUnstorableStrings({ ['k\ud800']: 1 })).toBe(true);
  });

  it('cuts short text on one line without splitting a surrogate pair', () => {
    expect(shortText('one\ntwo   three', 100)).toBe('one two three');
    expect(shortText(`${'x'.repeat(9)}😀tail`, 11)).toBe(`${'x'.repeat(9)}…`);
    expect(safeReason('files refused: Failed query: update "tasks" set "reason" = $1\nparams: secret')).toBe('files refused: a database statement failed');
  });

  it('keeps an answer exactly through the storage encoding, and a plain one as itself', () => {
    const odd = { type: 'message', content: [{ type: 'text', text: 'nul \u0000 lone \ud800 pair 😀' }] };
    const stored = encodeAnswer(odd as never);
    expect(JSON.stringify(stored)).not.toMatch(/(?<!\\)\\u0000/);
    expect(decodeAnswer(JSON.parse(JSON.stringify(stored)))).toEqual(odd);
    const plain = { type: 'message', content: [{ type: 'text', text: 'fine' }] };
    expect(encodeAnswer(plain as never)).toBe(plain);
    expect(decodeAnswer(plain)).toBe(plain);
  });
});

describe('correction prompts', () => {
  it('never carry a NUL from the failing output or the reason into the request', () => {
    const text = workerUserMessage({
      key: 'k',
      title: 'T',
      description: 'D',
      guidance: null,
      attempt: 2,
      maxAttempts: 3,
      workspaceView: '',
      testCommand: ['node', '--test'],
      failure: { kind: 'tests_failed', summary: '1 failed \u0000', excerpt: 'out \u0000 put' },
      previousFiles: null,
    });
    expect(text).not.toContain('\u0000');
    expect(text).toContain('out \u2400 put');
  });
});
