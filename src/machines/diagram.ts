/**
 * Renders a statechart as Mermaid `stateDiagram-v2` text for `GET /api/machines/:name?format=mermaid`.
 *
 * We walk the state nodes rather than `machine.toJSON()`, which leaves out eventless (`always`)
 * transitions — and those carry most of the lead's decisions.
 *
 * Mermaid constraints this file works around (its jison grammar, checked by hand):
 *  - Labels: `;` ends a statement, `#` may start a comment, and a second `:` in a transition label
 *    is a parse error before Mermaid 11.13, so those characters never reach the output.
 *  - Placement: older Mermaid moves a state into whichever composite block last mentions it, so an
 *    edge is written inside a block only when both ends are children of that block; every other
 *    edge (cross-hierarchy, or between parallel regions) is written at the top level.
 *  - Ids: the lexer reads `default…`, `accTitle…`, `accDescr…` and a bare `state`, `note`,
 *    `class`, `classDef`, `scale`, `direction` as keywords, so such ids get an `s_` prefix.
 */
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';

const KEYWORD_ID = /^(default|acctitle|accdescr)|^(state|note|class|classdef|scale|direction)$/i;

/** Text safe inside a label or a quoted state name. */
function text(raw: string): string {
  return raw.replace(/[\n\r"#;:{}]/g, ' ').replace(/\s+/g, ' ').trim();
}

function descendants(node: AnyStateNode): AnyStateNode[] {
  return Object.values(node.states).flatMap((child) => [child, ...descendants(child)]);
}

/** One Mermaid id per state, from its path (`active_writer_idle`), unique across the diagram. */
function stateIds(states: AnyStateNode[]): Map<AnyStateNode, string> {
  const ids = new Map<AnyStateNode, string>();
  const used = new Set<string>();
  for (const state of states) {
    let base = state.path.join('_').replace(/\W/g, '_') || 'state';
    if (KEYWORD_ID.test(base) || /^\d/.test(base)) base = `s_${base}`;
    let id = base;
    for (let n = 2; used.has(id); n++) id = `${base}_${n}`;
    used.add(id);
    ids.set(state, id);
  }
  return ids;
}

/** `'#lead.active.schedule.running'` or `{ schedule: 'running' }` → `running`. */
function stateValueLabel(value: unknown): string {
  if (typeof value === 'string') return value.replace(/^#/, '').split('.').at(-1) ?? value;
  if (value && typeof value === 'object') {
    return Object.entries(value as Record<string, unknown>)
      .map(([key, sub]) => (sub && typeof sub === 'object' && Object.keys(sub).length === 0 ? key : stateValueLabel(sub)))
      .join(' and ');
  }
  return 'state';
}

/** xstate's `and`/`or`/`not`/`stateIn` return functions carrying their operands. */
interface GuardFunction { name: string; guards?: unknown[]; stateValue?: unknown }

function isJunction(guard: unknown): boolean {
  return typeof guard === 'function' && ['and', 'or'].includes(guard.name) && 'guards' in guard;
}

function guardLabel(guard: unknown): string {
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const g = guard as unknown as GuardFunction;
    if (g.stateValue !== undefined) return `in ${stateValueLabel(g.stateValue)}`;
    const operand = (inner: unknown) => (isJunction(inner) ? `(${guardLabel(inner)})` : guardLabel(inner));
    if (g.guards && (g.name === 'and' || g.name === 'or')) return g.guards.map(operand).join(` ${g.name} `);
    if (g.guards && g.name === 'not') return `not ${operand(g.guards[0])}`;
    return 'guarded';
  }
  if (guard && typeof guard === 'object' && 'type' in guard && typeof guard.type === 'string') return guard.type;
  return 'guarded';
}

/** Event label: `always`, `done(test)`, `error(any child)`, `after 500`, or the event type. */
function eventLabel(eventType: string, srcByInvokeId: Map<string, string>): string {
  if (eventType === '') return 'always';
  if (eventType === '*') return 'any event';
  const actor = /^xstate\.(done|error)\.actor\.(.+)$/.exec(eventType);
  if (actor) {
    const invokeId = actor[2] ?? '';
    return `${actor[1] ?? ''}(${invokeId === '*' ? 'any child' : (srcByInvokeId.get(invokeId) ?? invokeId)})`;
  }
  const after = /^xstate\.after\.([^.]+)\./.exec(eventType);
  if (after) return `after ${after[1] ?? ''}`;
  if (eventType.startsWith('xstate.done.state.')) return 'done';
  return eventType;
}

/** A state's candidate lists: one per event, then its eventless list. */
function candidateLists(state: AnyStateNode): AnyTransitionDefinition[][] {
  return [...state.transitions.values(), ...(state.always ? [state.always] : [])];
}

/**
 * Mermaid `stateDiagram-v2` text for a machine: nested and parallel states, eventless and guarded
 * transitions, invoked effects.
 *
 * Each state is declared once as `state "<key>" as <path_id>`; compound states become blocks with
 * their own `[*] --> initial`, parallel regions are separated by `--`. Transition labels read
 * `<event> [<guard>]` — `always` for eventless ones, `done(<src>)`/`error(<src>)` for invoked
 * actors, `[else]` for the fallback after guarded candidates. Targetless transitions (actions only)
 * and transitions on the machine root (there is no box to start them from) are left out. Invoked
 * effects show inside the state's box as `invokes <src>`. The output is deterministic: definition
 * order throughout.
 */
export function toMermaid(machine: AnyStateMachine): string {
  const root = machine.root;
  const states = descendants(root);
  const ids = stateIds(states);
  const srcByInvokeId = new Map(
    [root, ...states].flatMap((s) => s.invoke.map((i) => [i.id, typeof i.src === 'string' ? i.src : i.id] as const)),
  );

  // Edge lines by the block they are written in (see the placement note at the top).
  const edges = new Map<AnyStateNode, string[]>();
  const seen = new Set<string>();
  for (const source of states) {
    for (const candidates of candidateLists(source)) {
      let guardedBefore = false;
      for (const t of candidates) {
        const event = eventLabel(String(t.eventType), srcByInvokeId);
        const guard = t.guard !== undefined ? guardLabel(t.guard) : guardedBefore ? 'else' : null;
        guardedBefore ||= t.guard !== undefined;
        const label = text(guard === null ? event : `${event} [${guard}]`);
        for (const target of t.target ?? []) {
          const targetId = ids.get(target);
          if (targetId === undefined) continue;
          const line = `${ids.get(source)} --> ${targetId} : ${label}`;
          if (seen.has(line)) continue;
          seen.add(line);
          const parent = source.parent;
          const home = parent && target.parent === parent && parent.type === 'compound' ? parent : root;
          edges.set(home, [...(edges.get(home) ?? []), line]);
        }
      }
    }
  }

  const lines = ['stateDiagram-v2'];
  const block = (node: AnyStateNode, depth: number): void => {
    const pad = '  '.repeat(depth);
    const children = Object.values(node.states);
    const initial = node.type === 'compound' ? node.initial.target[0] : undefined;
    if (initial) lines.push(`${pad}[*] --> ${ids.get(initial)}`);
    children.forEach((child, i) => {
      if (node.type === 'parallel' && i > 0) lines.push(`${pad}--`);
      const id = ids.get(child) ?? '';
      const name = text(child.type === 'history' ? `${child.key} (history)` : child.key);
      const nested = Object.keys(child.states).length > 0;
      lines.push(`${pad}state "${name}" as ${id}${nested ? ' {' : ''}`);
      if (nested) {
        block(child, depth + 1);
        lines.push(`${pad}}`);
      }
      const invokes = text(child.invoke.map((inv) => srcByInvokeId.get(inv.id) ?? inv.id).join(', '));
      // A description line draws inside an atomic state's box; a composite's title has no room.
      if (invokes) lines.push(nested ? `${pad}note right of ${id} : invokes ${invokes}` : `${pad}${id} : invokes ${invokes}`);
    });
    for (const line of edges.get(node) ?? []) lines.push(pad + line);
    for (const child of children) if (child.type === 'final') lines.push(`${pad}${ids.get(child)} --> [*]`);
  };
  block(root, 1);
  return `${lines.join('\n')}\n`;
}
