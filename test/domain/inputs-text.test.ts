/**
 * Strings that cannot be stored (NUL, a lone UTF-16 surrogate) are refused by the input schemas
 * themselves, not only at the HTTP edge: a `troupe run` plan file goes through the same schemas.
 */
import { describe, expect, it } from 'vitest';
import { issuesOf, planFileSchema } from '../../src/domain/inputs.ts';

const plan = {
  name: 'p',
  testCommand: 'node --test',
  goal: 'a goal',
  config: { models: { lead: 'claude-sonnet-4-6' }, protectedPaths: ['package.json'] },
  tasks: [{ key: 'a', title: 'A title', description: 'text', dependsOn: [] }],
};

function refusedAt(mutate: (p: typeof plan) => void): string[] {
  const p = structuredClone(plan);
  mutate(p);
  const r = planFileSchema.safeParse(p);
  return r.success ? [] : issuesOf(r.error).map((i) => `${i.path}: ${i.message}`);
}

describe('unstorable strings in a plan file', () => {
  it('a well-formed plan passes, emoji (surrogate pairs) included', () => {
    expect(refusedAt((p) => (p.tasks[0]!.title = 'ship it 🚀'))).toEqual([]);
  });

  it('NUL or a lone surrogate in any string field is refused, naming the field', () => {
    const why = 'must not contain NUL or a lone surrogate';
    expect(refusedAt((p) => (p.name = 'a\0b'))).toEqual([`name: ${why}`]);
    expect(refusedAt((p) => (p.testCommand = 'node \ud800'))).toEqual([`testCommand: ${why}`]);
    expect(refusedAt((p) => (p.goal = 'x\udfff'))).toEqual([`goal: ${why}`]);
    expect(refusedAt((p) => (p.config.models.lead = '\ud83d'))).toEqual([`config.models.lead: ${why}`]);
    expect(refusedAt((p) => (p.config.protectedPaths = ['a\0']))).toEqual([`config.protectedPaths.0: ${why}`]);
    expect(refusedAt((p) => (p.tasks[0]!.description = 'd\udc00'))).toEqual([`tasks.0.description: ${why}`]);
    expect(refusedAt((p) => (p.tasks[0]!.title = 't\0'))).toEqual([`tasks.0.title: ${why}`]);
  });
});
