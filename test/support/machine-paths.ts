/**
 * Helpers for model-based path tests of the statecharts (`@xstate/graph`). Traversal is pure
 * (`machine.transition`): an invoked effect never settles by itself, so a test offers its outcomes
 * as `xstate.done.actor.<id>` / `xstate.error.actor.<id>` events. The machine runs in an actor scope
 * that has a parent (so `sendParent` resolves) and records the actions a transition produced, so a
 * property can look at what a step reported upward.
 */
import { createActor, createMachine, type ActorLogic, type AnyStateMachine, type EventObject, type InputFrom, type Snapshot, type SnapshotFrom } from 'xstate';
import type { StatePath } from '@xstate/graph';

interface RecordedAction {
  type: string;
  params?: { targetId?: string; to?: { id?: string }; event?: EventObject };
}

/** A pure view of `machine`: transitions with a recording scope, and the events sent to the parent. */
export function pureMachine<M extends AnyStateMachine>(machine: M, input: InputFrom<M>) {
  type S = SnapshotFrom<M>;
  // Done/error events of invoked effects are not in the machine's own event type: any event goes.
  type Scope = Parameters<M['transition']>[2];
  const parent = createActor(createMachine({}));
  const self = createActor(machine, { parent, input });
  let recorded: RecordedAction[] = [];
  const scope = {
    self,
    id: 'under-test',
    sessionId: 'under-test',
    logger: () => {},
    defer: () => {},
    system: self.system,
    stopChild: () => {},
    emit: () => {},
    actionExecutor: (action: RecordedAction) => {
      recorded.push(action);
    },
  } as unknown as Scope;

  const transition = (snapshot: S, event: EventObject): S => machine.transition(snapshot, event, scope) as S;
  /** The next snapshot and the events the step sent to the parent (recomputed: steps are pure). */
  const step = (snapshot: S, event: EventObject): { next: S; sent: EventObject[]; toChildren: { to: string; event: EventObject }[] } => {
    recorded = [];
    const next = transition(snapshot, event);
    const sends = recorded.filter((a) => a.type === 'xstate.sendTo' && a.params?.event);
    const sent = sends.filter((a) => a.params?.targetId === '#_parent').map((a) => a.params!.event!);
    const toChildren = sends
      .filter((a) => a.params?.targetId !== '#_parent')
      .map((a) => ({ to: typeof a.params?.targetId === 'string' ? a.params.targetId : (a.params?.to?.id ?? '?'), event: a.params!.event! }));
    recorded = [];
    return { next, sent, toChildren };
  };
  /** A persisted snapshot (e.g. after a JSON round-trip) restored as the runtime does, in the same recording scope. */
  const restore = (stored: unknown): S => machine.restoreSnapshot(stored as Snapshot<unknown>, scope) as S;
  const initial = machine.getInitialSnapshot(scope, input) as S;
  const logic = {
    config: machine.config,
    transition: (snapshot: S, event: EventObject) => transition(snapshot, event),
    getInitialSnapshot: () => initial,
    getPersistedSnapshot: (snapshot: S) => machine.getPersistedSnapshot(snapshot),
  } as unknown as ActorLogic<S, EventObject, InputFrom<M>>;
  return { initial, transition, step, restore, logic };
}

/** The id of the (only) effect a state node invokes: its done event is `xstate.done.actor.<id>`. */
export function invokeId(machine: AnyStateMachine, stateId: string): string {
  const invoke = machine.getStateNodeById(stateId).invoke[0];
  if (!invoke) throw new Error(`${stateId} invokes nothing`);
  return invoke.id;
}

export const doneEvent = (id: string, output: unknown) => ({ type: `xstate.done.actor.${id}`, output });
export const errorEvent = (id: string, error: unknown) => ({ type: `xstate.error.actor.${id}`, error });

/** One step of a path: the event, the snapshot it led to, and what it sent to the parent. */
export interface Walked<S, E> {
  event: E;
  before: S;
  state: S;
  sent: EventObject[];
}

/** Replays a generated path step by step (the first step is `xstate.init`), with what each step reported. */
export function walk<S extends Snapshot<unknown>, E extends EventObject>(path: StatePath<S, E>, step: (s: S, e: E) => { next: S; sent: EventObject[] }): Walked<S, E>[] {
  const out: Walked<S, E>[] = [];
  let current = path.steps[0]!.state;
  for (const s of path.steps.slice(1)) {
    const { next, sent } = step(current, s.event);
    out.push({ event: s.event, before: current, state: next, sent });
    current = next;
  }
  return out;
}

/** A state's key for traversal: value and context (children follow from the value). */
export function stateKey(snapshot: { value: unknown; context: unknown }): string {
  return JSON.stringify({ value: snapshot.value, context: snapshot.context });
}
