/**
 * Time travel: a project's event log folded into what the page shows — each task's status, agent,
 * attempt and reason, each actor's state, the run's status — as it was right after any event.
 * The same fold serves a live run (events appended as they arrive) and a finished one (the slider
 * moves over the whole log). Pure: no DOM, no fetch.
 */

/** An event as the log and the stream deliver it (the README's "Events"), loosely typed: the page reads a few fields. */
export interface LogEvent {
  seq: number;
  type: string;
  runId: string | null;
  taskId: string | null;
  agentId: string | null;
  at: string;
  data: Record<string, unknown>;
}

export interface TaskAt {
  key: string;
  title: string;
  dependsOn: string[];
  status: string;
  agentId: string | null;
  attempt: number;
  reason: string | null;
}

export interface WorldAt {
  /** The seq of the last event folded in (0: none). */
  seq: number;
  runStatus: string | null;
  tasks: Map<string, TaskAt>;
  /** actorId (`lead`, `backend-1`, …) → its state value as the last `agent.state_changed` said. */
  actors: Map<string, unknown>;
  /** Actors retired by then (still listed, greyed). */
  retired: Set<string>;
  /** taskId → key, from each `task.created` (most events name the task by id only). */
  keys: Map<string, string>;
}

export function emptyWorld(): WorldAt {
  return { seq: 0, runStatus: null, tasks: new Map(), actors: new Map(), retired: new Set(), keys: new Map() };
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);

/** Folds one event into `world` (mutating it; returns it). Unknown events change only `seq`. */
export function applyEvent(world: WorldAt, e: LogEvent): WorldAt {
  world.seq = e.seq;
  const d = e.data;
  const key = str(d.key);
  if (e.type.startsWith('run.') && str(d.status)) world.runStatus = str(d.status);
  switch (e.type) {
    case 'task.created':
      if (key && e.taskId) world.keys.set(e.taskId, key);
      if (key) world.tasks.set(key, { key, title: str(d.title) ?? key, dependsOn: Array.isArray(d.dependsOn) ? d.dependsOn.filter((x): x is string => typeof x === 'string') : [], status: 'pending', agentId: null, attempt: 0, reason: null });
      break;
    case 'task.assigned': {
      const t = key ? world.tasks.get(key) : undefined;
      if (t) t.agentId = str(d.agentId);
      break;
    }
    case 'task.status_changed': {
      const t = key ? world.tasks.get(key) : undefined;
      if (!t) break;
      t.status = str(d.to) ?? t.status;
      t.reason = str(d.reason) ?? str(d.blockedReason);
      // A task re-queued (retry) starts counting its attempts again.
      if (t.status === 'pending') t.attempt = 0;
      break;
    }
    case 'test.result': {
      const t = taskOf(world, e);
      const attempt = num(d.attempt);
      if (t && attempt !== null && d.phase !== 'baseline') t.attempt = Math.max(t.attempt, attempt);
      break;
    }
    case 'files.applied': {
      const t = taskOf(world, e);
      const attempt = num(d.attempt);
      if (t && attempt !== null) t.attempt = Math.max(t.attempt, attempt);
      break;
    }
    case 'agent.state_changed': {
      const id = str(d.agentId);
      if (id) world.actors.set(id, d.state);
      break;
    }
    case 'agent.created': {
      const id = str(d.agentId);
      if (id) world.retired.delete(id);
      break;
    }
    case 'agent.retired': {
      const id = str(d.agentId);
      if (id) world.retired.add(id);
      break;
    }
  }
  return world;
}

/** The task an event is about: by its key in the data, else by the task id seen on its `task.created`. */
function taskOf(world: WorldAt, e: LogEvent): TaskAt | undefined {
  const key = str(e.data.key);
  if (key) return world.tasks.get(key);
  const k = e.taskId ? world.keys.get(e.taskId) : undefined;
  return k ? world.tasks.get(k) : undefined;
}

/**
 * The world right after the event with seq `upTo` (every event when omitted). Events must be in
 * seq order, as the log and the stream deliver them.
 */
export function worldAt(events: readonly LogEvent[], upTo?: number): WorldAt {
  const world = emptyWorld();
  for (const e of events) {
    if (upTo !== undefined && e.seq > upTo) break;
    applyEvent(world, e);
  }
  return world;
}
