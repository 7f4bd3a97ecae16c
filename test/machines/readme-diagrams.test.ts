/**
 * The README's two statechart diagrams are generated from the machines (`toMermaid`, as
 * `GET /api/machines/:name?format=mermaid` serves them): the worker's first, then the lead's.
 * After a change to a machine, regenerate them — this test says which block is stale.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { toMermaid } from '../../src/machines/diagram.ts';
import { leadMachine } from '../../src/machines/lead.ts';
import { workerMachine } from '../../src/machines/worker.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const blocks = [...readme.matchAll(/```mermaid\n([\s\S]*?)```/g)].map((m) => m[1]);

describe('README diagrams', () => {
  it('are the machines as toMermaid draws them: worker, then lead', () => {
    expect(blocks).toHaveLength(2);
    expect(blocks[0], 'the worker diagram').toBe(toMermaid(workerMachine));
    expect(blocks[1], 'the lead diagram').toBe(toMermaid(leadMachine));
  });
});
