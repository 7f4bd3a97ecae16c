/**
 * Inspection: the actors' XState inspection events, in the wire format of `@statelyai/inspect`
 * (what its WebSocket inspector sends), per project. Conversion costs serialisation, so it
 * only happens for projects somebody is watching; a new watcher first gets an `@xstate.actor`
 * event for every live actor of the project (the lead and its workers), then live events.
 */
import { createInspector, type StatelyInspectionEvent } from '@statelyai/inspect';
import type { AnyActorRef, AnyEventObject, InspectionEvent, MachineContext } from 'xstate';
import { sanitize } from './sanitize.ts';

export type InspectionListener = (event: StatelyInspectionEvent) => void;

/** Options shared with the `--inspect` WebSocket inspector: context and events leave sanitised. */
export const SANITIZE_OPTIONS = {
  sanitizeContext: (context: MachineContext) => sanitize(context) as MachineContext,
  sanitizeEvent: (event: AnyEventObject) => sanitize(event) as AnyEventObject,
};

interface ProjectWatch {
  listeners: Set<InspectionListener>;
  inspector: ReturnType<typeof createInspector>;
}

export class InspectionHub {
  private readonly watches = new Map<string, ProjectWatch>();

  /** Fed by every run's actor system. Cheap when nobody watches the project. */
  observe(projectId: string, event: InspectionEvent): void {
    this.watches.get(projectId)?.inspector.inspect.next?.(event);
  }

  /**
   * Watches a project: `live` actors are announced first (so a late watcher still knows every
   * actor), then inspection events flow. Returns the function that stops watching.
   */
  watch(projectId: string, listener: InspectionListener, live: readonly AnyActorRef[]): () => void {
    let watch = this.watches.get(projectId);
    if (!watch) {
      const listeners = new Set<InspectionListener>();
      const inspector = createInspector(
        {
          send: (event: StatelyInspectionEvent) => {
            for (const l of listeners) l(event);
          },
          start: () => undefined,
          stop: () => undefined,
        },
        { ...SANITIZE_OPTIONS, serialize: (event) => JSON.parse(safeJson(event)) as StatelyInspectionEvent },
      );
      watch = { listeners, inspector };
      this.watches.set(projectId, watch);
    }
    // Announce the live actors to this listener only, named by actor id as live events name them.
    const names = new Map(live.map((ref) => [ref.sessionId, ref.id]));
    const announce = createInspector(
      {
        send: (event: StatelyInspectionEvent) => listener(event.type === '@xstate.actor' ? { ...event, name: names.get(event.sessionId) ?? event.name } : event),
        start: () => undefined,
        stop: () => undefined,
      },
      { ...SANITIZE_OPTIONS, serialize: (event) => JSON.parse(safeJson(event)) as StatelyInspectionEvent },
    );
    for (const ref of live) announce.actor(ref, ref.getSnapshot() as never);
    watch.listeners.add(listener);
    const current = watch;
    return () => {
      current.listeners.delete(listener);
      if (current.listeners.size === 0 && this.watches.get(projectId) === current) this.watches.delete(projectId);
    };
  }
}

/** JSON that survives cycles and functions (actor refs inside snapshots). */
function safeJson(value: unknown): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'function') return undefined;
    if (typeof v === 'object' && v !== null) {
      if (seen.has(v)) return '[circular]';
      seen.add(v);
      if ('sessionId' in v && 'send' in v) return { id: (v as { id?: unknown }).id, sessionId: (v as { sessionId: unknown }).sessionId };
    }
    return v;
  });
}
