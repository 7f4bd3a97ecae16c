/**
 * A statechart as a graph to lay out: XState's `machine.toJSON()` definition (what
 * `GET /api/machines/:name` serves) turned into an ELK graph whose compound nodes are the compound
 * and parallel states (a parallel state's regions are its children, drawn side by side, dashed),
 * whose edges are the transitions (labelled with the event and guard as the README's diagrams
 * label them), and a snapshot's `value` turned into the ids of the states it is in. Pure: no DOM,
 * so the layout can be tested in Node with the same elkjs the page uses.
 */
import type { ElkExtendedEdge, ElkNode } from 'elkjs/lib/elk-api.js';

/** The parts of a state node definition (XState v5 `toJSON()`) read here. */
export interface StateDef {
  id: string;
  key: string;
  type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  initial?: { target?: string[] } | undefined;
  states?: Record<string, StateDef>;
  transitions?: TransitionDef[];
  invoke?: { src?: unknown; id?: string }[];
}

export interface TransitionDef {
  eventType: string;
  target?: string[] | undefined;
  guard?: unknown;
  source?: string;
}

/** What the page draws for a state: its label, kind and nesting. */
export interface StateBox {
  id: string;
  label: string;
  kind: StateDef['type'];
  /** The parent's id; null for the machine itself. */
  parent: string | null;
  /** A region of a parallel state (its children run at once). */
  region: boolean;
  /** Names of the actors it invokes. */
  invokes: string[];
}

export interface MachineGraph {
  /** The ELK graph to lay out (root = the machine). */
  elk: ElkNode;
  states: Map<string, StateBox>;
  /** Edge id → its label (also set as the ELK edge's label). */
  edges: { id: string; source: string; target: string; label: string }[];
}

/** Approximate text metrics: the page uses a 12 px monospace-ish font. */
const CHAR_WIDTH = 7;
const LINE_HEIGHT = 16;
const HEADER = 26;

export function machineGraph(def: StateDef): MachineGraph {
  const states = new Map<string, StateBox>();
  const edges: MachineGraph['edges'] = [];
  const build = (node: StateDef, parent: StateDef | null): ElkNode => {
    const invokes = (node.invoke ?? []).map((i) => srcName(i.src, i.id));
    states.set(node.id, { id: node.id, label: node.key, kind: node.type, parent: parent?.id ?? null, region: parent?.type === 'parallel', invokes });
    const children = Object.values(node.states ?? {}).map((child) => build(child, node));
    for (const [i, t] of (node.transitions ?? []).entries()) {
      for (const target of t.target ?? []) {
        const to = target.replace(/^#/, '');
        edges.push({ id: `${node.id}→${to}#${i}`, source: node.id, target: to, label: transitionLabel(t) });
      }
    }
    const lines = [node.key, ...invokes.map((s) => `invokes ${s}`)];
    const width = Math.max(...lines.map((l) => l.length)) * CHAR_WIDTH + 24;
    if (children.length === 0) return { id: node.id, width, height: lines.length * LINE_HEIGHT + 12 };
    return {
      id: node.id,
      children,
      layoutOptions: {
        // One layered layout across every level (edges cross levels: INCLUDE_CHILDREN). A parallel
        // state's regions have no edges between them, so they stack, each its own box.
        'elk.algorithm': 'layered',
        'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
        'elk.direction': 'RIGHT',
        'elk.padding': `[top=${HEADER + (lines.length - 1) * LINE_HEIGHT},left=12,bottom=12,right=12]`,
        'elk.spacing.nodeNode': '24',
        'elk.layered.spacing.nodeNodeBetweenLayers': '40',
        'elk.nodeSize.minimum': `(${width}, ${HEADER + 20})`,
        'elk.nodeSize.constraints': 'MINIMUM_SIZE',
      },
    };
  };
  const root = build(def, null);
  const elkEdges: ElkExtendedEdge[] = edges
    .filter((e) => states.has(e.target))
    .map((e) => ({ id: e.id, sources: [e.source], targets: [e.target], labels: [{ text: e.label, width: e.label.length * CHAR_WIDTH, height: LINE_HEIGHT }] }));
  root.edges = elkEdges;
  root.layoutOptions = { ...root.layoutOptions, 'elk.hierarchyHandling': 'INCLUDE_CHILDREN', 'elk.edgeLabels.inline': 'false' };
  return { elk: root, states, edges: edges.filter((e) => states.has(e.target)) };
}

/**
 * A transition as the diagrams label it: the event (`always` for eventless ones, `done(x)` and
 * `error(x)` for an invoked actor's outcome, `after(ms)` for delays) and its guard in brackets.
 */
export function transitionLabel(t: Pick<TransitionDef, 'eventType' | 'guard'>): string {
  const guard = guardName(t.guard);
  return `${eventLabel(t.eventType)}${guard ? ` [${guard}]` : ''}`;
}

function eventLabel(type: string): string {
  if (type === '') return 'always';
  const actor = /^xstate\.(done|error)\.actor\.(?:\d+\.)?(.+)$/.exec(type);
  if (actor) return `${actor[1]}(${actor[2]!.split('.').at(-1)})`;
  const delay = /^xstate\.after\.(\d+)\./.exec(type);
  if (delay) return `after(${delay[1]}ms)`;
  return type;
}

function guardName(guard: unknown): string | null {
  if (guard === undefined || guard === null) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && 'type' in guard && typeof (guard).type === 'string') return (guard as { type: string }).type;
  return 'guard';
}

function srcName(src: unknown, id: string | undefined): string {
  if (typeof src === 'string') return src;
  return id ?? 'actor';
}

/**
 * The ids of the states a snapshot `value` is in, ancestors included: `{active: {schedule:
 * 'running'}}` of machine `lead` → `lead`, `lead.active`, `lead.active.schedule`,
 * `lead.active.schedule.running`. Keys the definition does not know are ignored.
 */
export function activeStates(def: StateDef, value: unknown): Set<string> {
  const active = new Set<string>([def.id]);
  const visit = (node: StateDef, v: unknown): void => {
    if (typeof v === 'string') {
      const child = node.states?.[v];
      if (child) active.add(child.id);
      // A worker's state is reported by its name alone (`generating`), without the `working`
      // parent that groups the working states: light the one compound child that holds it.
      const holder = child ? undefined : Object.values(node.states ?? {}).find((c) => c.states?.[v]);
      if (holder) {
        active.add(holder.id);
        visit(holder, v);
      }
      return;
    }
    if (v === null || typeof v !== 'object') return;
    for (const [key, inner] of Object.entries(v as Record<string, unknown>)) {
      const child = node.states?.[key];
      if (!child) continue;
      active.add(child.id);
      visit(child, inner);
    }
  };
  visit(def, value);
  return active;
}
