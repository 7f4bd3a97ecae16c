/**
 * Reading what an invoked effect gave back, typed and without casts on events: the output of a
 * done event as a guard's or an action's params, the one case of an output a guard already chose,
 * and the error of an error event seen through a wildcard transition.
 */

/** Params of a guard or an action: the output of the effect whose done event is being handled. */
export const output = <T>({ event }: { event: { output: T } }): T => event.output;

/**
 * The case of an effect's output a guard already chose. Throws if the guard and the output
 * disagree (a bug in the machine, not a failed attempt).
 */
export function only<T extends { kind: string }, K extends T['kind']>(out: T, kind: K): Extract<T, { kind: K }> {
  if (out.kind !== kind) throw new Error(`expected a '${kind}' output, got '${out.kind}'`);
  return out as Extract<T, { kind: K }>;
}

/** The error of an `xstate.error.actor.*` event (a wildcard transition sees it as a plain event). */
export function errorOf(event: object): unknown {
  return 'error' in event ? event.error : undefined;
}

/**
 * A combinator guard (`and`, `or`, `not`: a function, which a JSON definition drops) that keeps
 * its name in `machine.toJSON()` — the dashboard draws transitions from that definition.
 */
export function labelled<G extends object>(guard: G, label: string): G {
  return Object.assign(guard, { toJSON: () => ({ type: label }) });
}

/** The `kind` of a done event's output, for a guard inside a combinator (where a guard takes no params). */
export function outputKind(event: object): unknown {
  if (!('output' in event)) return undefined;
  const out = event.output;
  return typeof out === 'object' && out !== null && 'kind' in out ? out.kind : undefined;
}
