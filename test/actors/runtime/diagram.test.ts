import { describe, expect, it } from 'vitest';
import { and, fromPromise, not, or, setup, stateIn, type AnyStateMachine, type AnyStateNode } from 'xstate';
import { toMermaid } from '../../../src/machines/diagram.ts';
import { leadMachine } from '../../../src/machines/lead.ts';
import { workerMachine } from '../../../src/machines/worker.ts';

// Neither `mermaid` nor `@mermaid-js/parser` is installed, so the diagram is checked structurally:
// every line must be one of the statement forms below (labels without the `:`, `;` and `#` that
// Mermaid's lexer treats specially), blocks must balance, and every referenced id is declared.

interface Place { parent: string; region: number }
interface Declaration extends Place { id: string; label: string; composite: boolean }
interface Edge extends Place { from: string; to: string; label: string | null }

const ROOT = '(root)';

function parse(diagram: string) {
  const [first, ...rest] = diagram.trimEnd().split('\n');
  expect(first).toBe('stateDiagram-v2');
  const stack: Place[] = [{ parent: ROOT, region: 0 }];
  const declarations: Declaration[] = [];
  const edges: Edge[] = [];
  const descriptions: Array<{ id: string; text: string }> = [];
  const notes: Array<{ id: string; text: string }> = [];
  for (const raw of rest) {
    const line = raw.trim();
    const here = { ...stack.at(-1)! };
    let m: RegExpExecArray | null;
    if ((m = /^state "([^"]+)" as (\w+)( \{)?$/.exec(line))) {
      declarations.push({ id: m[2]!, label: m[1]!, composite: m[3] !== undefined, ...here });
      if (m[3]) stack.push({ parent: m[2]!, region: 0 });
    } else if (line === '}') {
      expect(stack.length, 'unbalanced }').toBeGreaterThan(1);
      stack.pop();
    } else if (line === '--') {
      expect(stack.length, '-- outside a block').toBeGreaterThan(1);
      stack.at(-1)!.region++;
    } else if ((m = /^(\w+|\[\*\]) --> (\w+|\[\*\])(?: : ([^:;#{}"]+))?$/.exec(line))) {
      edges.push({ from: m[1]!, to: m[2]!, label: m[3] ?? null, ...here });
    } else if ((m = /^(\w+) : ([^:;#{}"]+)$/.exec(line))) {
      descriptions.push({ id: m[1]!, text: m[2]! });
    } else if ((m = /^note right of (\w+) : ([^:;#{}"]+)$/.exec(line))) {
      notes.push({ id: m[1]!, text: m[2]! });
    } else {
      throw new Error(`not a recognised Mermaid statement: ${JSON.stringify(raw)}`);
    }
  }
  expect(stack, 'unclosed block').toHaveLength(1);
  return { declarations, edges, descriptions, notes };
}

function descendants(node: AnyStateNode): AnyStateNode[] {
  return Object.values(node.states).flatMap((child) => [child, ...descendants(child)]);
}

/** Checks that hold for any machine whose paths joined by `_` are valid, distinct Mermaid ids. */
function expectFaithful(machine: AnyStateMachine, diagram: string) {
  const { declarations, edges, descriptions } = parse(diagram);
  const states = descendants(machine.root);
  const idOf = (s: AnyStateNode) => s.path.join('_');

  // Every state exactly once, under its parent's block, labelled with its key.
  const ids = declarations.map((d) => d.id);
  expect(new Set(ids).size).toBe(ids.length);
  expect(declarations.map(({ id, label, parent }) => ({ id, label, parent }))).toEqual(
    states.map((s) => ({ id: idOf(s), label: s.key, parent: s.parent === machine.root ? ROOT : idOf(s.parent!) })),
  );

  // Every referenced id is declared; an edge inside a block joins two states of that block and region.
  const declared = new Map(declarations.map((d) => [d.id, d]));
  for (const e of edges) {
    for (const end of [e.from, e.to]) if (end !== '[*]') expect(declared.has(end), `${end} declared`).toBe(true);
    if (e.parent !== ROOT && e.from !== '[*]' && e.to !== '[*]') {
      for (const end of [e.from, e.to]) expect({ parent: declared.get(end)!.parent, region: declared.get(end)!.region }).toEqual({ parent: e.parent, region: e.region });
    }
  }
  for (const d of descriptions) expect(declared.has(d.id)).toBe(true);

  // Every targeted transition, eventless ones included, is drawn; targetless ones are not.
  const expected = new Set<string>();
  for (const s of states) {
    for (const t of [...[...s.transitions.values()].flat(), ...(s.always ?? [])]) {
      for (const target of t.target ?? []) expected.add(`${idOf(s)} --> ${idOf(target)}`);
    }
  }
  const drawn = new Set(edges.filter((e) => e.from !== '[*]' && e.to !== '[*]').map((e) => `${e.from} --> ${e.to}`));
  expect([...drawn].sort()).toEqual([...expected].sort());

  // Initial and final markers.
  for (const s of [machine.root, ...states]) {
    const initial = s.type === 'compound' ? s.initial.target[0] : undefined;
    if (initial) expect(edges).toContainEqual(expect.objectContaining({ from: '[*]', to: idOf(initial), parent: s === machine.root ? ROOT : idOf(s) }));
    if (s.type === 'final') expect(edges).toContainEqual(expect.objectContaining({ from: idOf(s), to: '[*]' }));
  }

  for (const text of [...edges.map((e) => e.label ?? ''), ...descriptions.map((d) => d.text)]) {
    expect(text).not.toMatch(/object Object|undefined|function|=>/);
  }
  return { declarations, edges };
}

const lines = (diagram: string) => diagram.split('\n').map((l) => l.trim());

describe('toMermaid', () => {
  it('draws the worker: guarded invoke results, an eventless choice, invoked effects', () => {
    const diagram = toMermaid(workerMachine);
    expect(diagram.startsWith('stateDiagram-v2\n')).toBe(true);
    expectFaithful(workerMachine, diagram);
    expect(lines(diagram)).toEqual(
      expect.arrayContaining([
        '[*] --> idle',
        'state "testing" as working_testing',
        'working_testing : invokes test',
        'idle --> working : ASSIGN',
        '[*] --> working_preparing',
        'working_testing --> working_committing : done(test) [testsAccepted]',
        'working_testing --> working_evaluating : done(test) [else]',
        // The working states share their CANCEL and fault transitions (on their parent).
        'working --> releasing : CANCEL',
        'working --> idle : error(any child)',
        'releasing --> working : ASSIGN',
        'working_generating --> working_evaluating : error(generate) [isTransient]',
        'working_evaluating --> working_correcting : always [canCorrect]',
        'working_evaluating --> working_exhausted : always [else]',
      ]),
    );
  });

  it('draws the lead: a parallel state with two regions, combinator guards, cross-hierarchy edges', () => {
    const diagram = toMermaid(leadMachine);
    expect(diagram.startsWith('stateDiagram-v2\n')).toBe(true);
    const { declarations } = expectFaithful(leadMachine, diagram);

    const at = (id: string) => declarations.find((d) => d.id === id);
    expect(at('active')).toMatchObject({ parent: ROOT, composite: true });
    expect(at('active_schedule')).toMatchObject({ parent: 'active', region: 0, composite: true });
    expect(at('active_writer')).toMatchObject({ parent: 'active', region: 1, composite: true });
    expect(at('active_writer_idle')).toMatchObject({ parent: 'active_writer', label: 'idle' });
    expect(diagram).toContain('    }\n    --\n    state "writer" as active_writer {\n      [*] --> active_writer_idle\n');

    expect(lines(diagram)).toEqual(
      expect.arrayContaining([
        '[*] --> idle',
        'idle --> preflight : always [else]',
        'preflight --> planning : done(preflight) [preflightPassed and startsWithPlan]',
        'preflight --> active : done(preflight) [preflightPassed]',
        'preflight --> failing : done(preflight) [else]',
        'preflight : invokes preflight',
        'active_writer_idle --> active_writer_writing : always [hasQueue]',
        'active_writer_idle --> active_writer_writing : always [in running and canDispatch]',
        'active_writer_idle --> finishing : always [in running and isSettled and not hasQueue]',
        'active_writer_writing --> failing : error(persist)',
        'active_writer_writing : invokes persist',
        'active_schedule_running --> active_schedule_paused : PAUSE [nothingInFlight]',
        'active --> cancelling : CANCEL',
        'completed --> [*]',
      ]),
    );
    // The targetless `xstate.error.actor.*` handler on `active` (actions only) is not drawn.
    expect(diagram).not.toContain('any child');
  });

  it('is deterministic', () => {
    expect(toMermaid(leadMachine)).toBe(toMermaid(leadMachine));
  });

  it('keeps odd machines valid: keyword and colliding ids, history, delays, nested combinators', () => {
    const probe = setup({
      actors: { load: fromPromise(async () => 1) },
      guards: { ok: () => true, bad: () => false, over: (_, params: { limit: number }) => params.limit > 0 },
    }).createMachine({
      id: 'probe',
      initial: 'default',
      on: { RESET: '.default' },
      states: {
        default: {
          after: { 500: 'note' },
          on: {
            GO: [
              { guard: or([not(and(['ok', 'bad'])), stateIn({ note: 'a' })]), target: 'note' },
              { guard: ({ event }) => event.type === 'GO', target: 'note.a_b' },
              { guard: { type: 'over', params: { limit: 1 } }, target: 'note.a' },
            ],
            'odd:event;#1': 'end',
            PING: { actions: () => undefined },
          },
        },
        note: {
          initial: 'a_b',
          invoke: { src: 'load', onError: 'default' },
          on: { 'xstate.error.actor.*': 'end' },
          states: {
            a_b: {},
            a: { initial: 'b', states: { b: {}, hist: { type: 'history' } } },
          },
        },
        end: { type: 'final' },
      },
    });
    const diagram = toMermaid(probe);
    const { declarations, edges, notes } = parse(diagram);
    expect(declarations.map((d) => [d.id, d.label, d.parent])).toEqual([
      ['s_default', 'default', ROOT],
      ['s_note', 'note', ROOT],
      ['note_a_b', 'a_b', 's_note'],
      ['note_a', 'a', 's_note'],
      ['note_a_b_2', 'b', 'note_a'],
      ['note_a_hist', 'hist (history)', 'note_a'],
      ['end', 'end', ROOT],
    ]);
    expect(notes).toEqual([{ id: 's_note', text: 'invokes load' }]);
    expect(edges.map((e) => `${e.from} --> ${e.to} : ${e.label}`)).toEqual(
      expect.arrayContaining([
        's_default --> s_note : after 500',
        's_default --> s_note : GO [not (ok and bad) or in a]',
        's_default --> note_a_b : GO [guarded]',
        's_default --> note_a : GO [over]',
        's_default --> end : odd event 1',
        's_note --> s_default : error(load)',
        's_note --> end : error(any child)',
        'end --> [*] : null',
      ]),
    );
    // Root-level and targetless transitions have nothing to draw.
    expect(diagram).not.toMatch(/RESET|PING/);
  });
});
