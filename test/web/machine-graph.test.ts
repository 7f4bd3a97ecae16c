/**
 * The dashboard's statechart layout, from the machines' own definitions (as `/api/machines/:name`
 * serves them) through the same elkjs the page uses: every state is drawn inside its parent,
 * parallel regions are compound boxes of their own, every transition is an edge, and a snapshot's
 * value lights exactly the states it is in.
 */
import elkModule from 'elkjs/lib/elk.bundled.js';
import type { ElkNode } from 'elkjs/lib/elk-api.js';
import { describe, expect, it } from 'vitest';
import { leadMachine } from '../../src/machines/lead.ts';
import { workerMachine } from '../../src/machines/worker.ts';
import { activeStates, machineGraph, transitionLabel, type StateDef } from '../../web/src/machine-graph.ts';

// A CommonJS module: its constructor is `module.exports` at run time, typed as the module's default.
const ELK = ((elkModule as { default?: unknown }).default ?? elkModule) as new () => { layout(graph: ElkNode): Promise<ElkNode> };

const definition = (m: { toJSON(): unknown }) => JSON.parse(JSON.stringify(m.toJSON())) as StateDef;

/** Every laid-out node, with its absolute box. */
function boxes(node: ElkNode, dx = 0, dy = 0, out = new Map<string, { x: number; y: number; w: number; h: number; parent: string | null }>(), parent: string | null = null) {
  const x = dx + (node.x ?? 0);
  const y = dy + (node.y ?? 0);
  out.set(node.id, { x, y, w: node.width ?? 0, h: node.height ?? 0, parent });
  for (const child of node.children ?? []) boxes(child, x, y, out, node.id);
  return out;
}

describe('statechart layout', () => {
  for (const [name, machine] of [['lead', leadMachine], ['worker', workerMachine]] as const) {
    it(`lays out the ${name} machine: each state inside its parent, each transition an edge`, async () => {
      const def = definition(machine);
      const graph = machineGraph(def);
      const laid = await new ELK().layout(graph.elk);
      const all = boxes(laid);
      // Every state of the definition is a node.
      const ids: string[] = [];
      const collect = (s: StateDef) => {
        ids.push(s.id);
        Object.values(s.states ?? {}).forEach(collect);
      };
      collect(def);
      expect([...all.keys()].sort()).toEqual(ids.sort());
      for (const [id, b] of all) {
        expect(b.w, id).toBeGreaterThan(0);
        if (!b.parent) continue;
        const p = all.get(b.parent)!;
        expect(b.x, `${id} inside ${b.parent}`).toBeGreaterThanOrEqual(p.x);
        expect(b.y, `${id} inside ${b.parent}`).toBeGreaterThanOrEqual(p.y);
        expect(b.x + b.w, `${id} inside ${b.parent}`).toBeLessThanOrEqual(p.x + p.w + 0.5);
        expect(b.y + b.h, `${id} inside ${b.parent}`).toBeLessThanOrEqual(p.y + p.h + 0.5);
      }
      // Each edge got a route.
      expect(graph.edges.length).toBeGreaterThan(5);
      for (const e of laid.edges ?? []) expect((e as { sections?: unknown[] }).sections?.length, e.id).toBeGreaterThan(0);
    });
  }

  it('draws the lead as the README diagram does: parallel regions, done/error and guards in the labels', () => {
    const graph = machineGraph(definition(leadMachine));
    expect(graph.states.get('lead.active')).toMatchObject({ kind: 'parallel', parent: 'lead' });
    expect(graph.states.get('lead.active.schedule')).toMatchObject({ kind: 'compound', region: true });
    expect(graph.states.get('lead.active.writer')).toMatchObject({ kind: 'compound', region: true });
    expect(graph.states.get('lead.preflight')?.invokes).toEqual(['preflight']);
    const labels = graph.edges.map((e) => `${e.source} → ${e.target} : ${e.label}`);
    // Named guards are in the definition; combinators (`and(…)`) are functions, which toJSON() drops.
    expect(labels).toContain('lead.preflight → lead.active : done(preflight) [preflightPassed]');
    expect(labels).toEqual(
      expect.arrayContaining([
        'lead.active.schedule.running → lead.active.schedule.paused : PAUSE [nothingInFlight]',
        'lead.active → lead.cancelling : CANCEL',
      ]),
    );
    expect(transitionLabel({ eventType: '', guard: undefined })).toBe('always');
    expect(transitionLabel({ eventType: 'xstate.error.actor.0.lead.finishing', guard: undefined })).toBe('error(finishing)');
  });

  it("lights exactly the states a snapshot's value is in", () => {
    const def = definition(leadMachine);
    expect([...activeStates(def, { active: { schedule: 'running', writer: 'idle' } })].sort()).toEqual(
      ['lead', 'lead.active', 'lead.active.schedule', 'lead.active.schedule.running', 'lead.active.writer', 'lead.active.writer.idle'].sort(),
    );
    expect([...activeStates(def, 'completed')]).toEqual(['lead', 'lead.completed']);
    expect([...activeStates(def, { nowhere: 'x' })]).toEqual(['lead']);
  });
});
