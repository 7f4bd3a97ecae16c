/**
 * The run's actors: the lead and every worker (`GET …/actors`), each with its machine's statechart
 * and the state(s) it is in highlighted — as it is now, or, while time travelling, as the last
 * `agent.state_changed` before the chosen event said (nothing lit when it had not moved yet).
 * The lead's `writer` region is not lit: it toggles with every batch the lead persists, so the
 * events leave it out and a read of it is stale at once; the `schedule` region is the news.
 */
import { Statechart } from './Statechart.tsx';
import type { ActorView } from './types.ts';

export function AgentsView({ actors, stateOf, retired }: { actors: ActorView[]; stateOf: (a: ActorView) => unknown; retired: (a: ActorView) => boolean }) {
  if (actors.length === 0) return <p class="empty">No actors yet: the lead starts with the run, workers as tasks are dispatched.</p>;
  return (
    <div class="agents">
      {[...actors].sort((a, b) => Number(b.kind === 'lead') - Number(a.kind === 'lead') || a.id.localeCompare(b.id)).map((a) => {
        const value = reported(a, stateOf(a));
        return (
          <section key={a.id} class={`agent${retired(a) ? ' retired' : ''}`} data-actor={a.id} aria-label={`actor ${a.id}`}>
            <h3>
              {a.id} <span class="muted">{a.kind === 'worker' ? `· ${a.agentType ?? 'worker'} ` : ''}· machine {a.machine}{a.taskKey ? ` · task ${a.taskKey}` : ''}</span>
            </h3>
            <p class="agent-state">
              state: <code data-testid="actor-state">{value === undefined ? 'not started yet' : stateText(value)}</code>
              {retired(a) ? ' · retired' : ''}
            </p>
            <Statechart machine={a.machine} value={value} label={`statechart of ${a.id}`} />
          </section>
        );
      })}
    </div>
  );
}

/** The state as the events report it: for the lead, without its bookkeeping `writer` region. */
export function reported(a: Pick<ActorView, 'kind'>, value: unknown): unknown {
  if (a.kind !== 'lead' || typeof value !== 'object' || value === null) return value;
  const active = (value as { active?: unknown }).active;
  if (typeof active !== 'object' || active === null) return value;
  return { active: { schedule: (active as { schedule?: unknown }).schedule } };
}

/** A state value in the dotted form XState prints: `active.schedule.running, active.writer.idle`. */
export function stateText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    return Object.entries(value as Record<string, unknown>)
      .flatMap(([k, v]) => stateText(v).split(', ').map((s) => (s ? `${k}.${s}` : k)))
      .join(', ');
  }
  return '';
}
