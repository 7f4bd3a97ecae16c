/**
 * One project's run: the controls (start, pause, resume, cancel), the budget meter, the run's state
 * and summary, notices of what needs a person, the time-travel bar, and three views: the task DAG
 * (with a picked task's panel), the agents (each actor's statechart) and the event log.
 * Everything is read from the API once and then kept current from the project's event stream: each
 * event moves what it names at once (a task's status, its agent, an actor's state, the run's state)
 * and a coalesced reload reads the rest. The event log (read whole, then grown by the stream) lets
 * the DAG and the statecharts show the run as it was after any event (`worldAt`).
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { errorText, eventsUrl, getJson, postJson, projectPath } from './api.ts';
import { taskHref } from './App.tsx';
import { Dag } from './Dag.tsx';
import { AgentsView, stateText } from './AgentsView.tsx';
import { EventsView } from './EventsView.tsx';
import { LOG_PAGE, mergeEvents, readLog, toLogEvent, type LogPage } from './history.ts';
import { useCoalesced, useEvents } from './live.ts';
import { Notices, noticeOf, notifyDesktop, type Notice } from './Notices.tsx';
import { applyEvent as foldEvent, emptyWorld, worldAt, type LogEvent, type WorldAt } from './replay.ts';
import { TaskPanel } from './TaskPanel.tsx';
import { TimeTravel } from './TimeTravel.tsx';
import { ACTIVE_RUN, type ActorView, type Project, type Run, type RunStatus, type Task, type TaskStatus, type TroupeEvent, type UsageReport } from './types.ts';
import { statusWords, usd } from './words.ts';

interface State {
  project: Project;
  tasks: Task[];
  run: Run | null;
  usage: UsageReport;
  actors: ActorView[];
}

type Tab = 'tasks' | 'agents' | 'events';
const TABS: { id: Tab; label: string }[] = [
  { id: 'tasks', label: 'Tasks' },
  { id: 'agents', label: 'Agents' },
  { id: 'events', label: 'Events' },
];

type Control = 'start' | 'pause' | 'resume' | 'cancel';

function controlsFor(status: RunStatus | null): Control[] {
  switch (status) {
    case null:
    case 'completed':
    case 'blocked':
    case 'cancelled':
    case 'failed':
      return ['start'];
    case 'planning':
    case 'running':
      return ['pause', 'cancel'];
    case 'pausing':
      return ['cancel'];
    case 'paused':
      return ['resume', 'cancel'];
  }
}

export function RunView({ projectId, taskKey }: { projectId: string; taskKey: string | null }) {
  const [state, setState] = useState<State | null>(null);
  const [agentStates, setAgentStates] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [tab, setTab] = useState<Tab>('tasks');
  const [events, setEvents] = useState<readonly LogEvent[]>([]);
  /** The seq of the event the page shows the run after; null: live. */
  const [at, setAt] = useState<number | null>(null);
  const [playing, setPlaying] = useState(false);
  const [notices, setNotices] = useState<Notice[]>([]);
  /** Events up to this seq were in the log when the page opened: they do not notify. Null until read. */
  const seen = useRef<number | null>(null);
  const unread = useRef<LogEvent[]>([]);

  const notify = (e: LogEvent) => {
    const n = noticeOf(e);
    if (!n) return;
    setNotices((list) => (list.some((x) => x.seq === n.seq) ? list : [...list, n]));
    notifyDesktop(n);
  };

  const load = async () => {
    try {
      const [project, { tasks }, { runs }, usage, { actors }] = await Promise.all([
        getJson<Project>(projectPath(projectId)),
        getJson<{ tasks: Task[] }>(projectPath(projectId, '/tasks')),
        getJson<{ runs: Run[] }>(projectPath(projectId, '/runs')),
        getJson<UsageReport>(projectPath(projectId, '/usage')),
        getJson<{ actors: ActorView[] }>(projectPath(projectId, '/actors')),
      ]);
      setState({ project, tasks, run: runs[0] ?? null, usage, actors });
      setError(null);
    } catch (e) {
      setError(errorText(e));
    }
  };
  const reload = useCoalesced(() => void load(), 300);
  useEffect(() => {
    setState(null);
    setEvents([]);
    setAt(null);
    setPlaying(false);
    setNotices([]);
    seen.current = null;
    unread.current = [];
    void load();
    let current = true;
    readLog((since) => getJson<LogPage>(projectPath(projectId, `/events/log?since=${since}&limit=${LOG_PAGE}`))).then(
      (log) => {
        if (!current) return;
        seen.current = log.at(-1)?.seq ?? 0;
        setEvents((list) => mergeEvents(log, list));
        for (const e of unread.current.splice(0)) if (e.seq > seen.current) notify(e);
      },
      (e: unknown) => current && setError(`the event log could not be read: ${errorText(e)}`),
    );
    return () => {
      current = false;
    };
  }, [projectId]);

  const live = useEvents(state ? (since) => eventsUrl(projectId, since) : null, (raw) => {
    const e = toLogEvent(raw);
    setEvents((list) => mergeEvents(list, [e]));
    if (seen.current === null) unread.current.push(e);
    else if (e.seq > seen.current) notify(e);
    setState((s) => (s ? applyEvent(s, raw) : s));
    if (e.type === 'agent.state_changed') setAgentStates((a) => ({ ...a, [String(e.data.agentId)]: stateName(e.data.state) }));
    reload();
  }, reload);

  const control = async (c: Control) => {
    if (c === 'cancel' && !confirm('Cancel this run? Work in flight is aborted; tasks not done end cancelled.')) return;
    setBusy(true);
    setActionError(null);
    try {
      const { run } = await postJson<{ run: Run }>(projectPath(projectId, `/${c}`));
      setState((s) => (s ? { ...s, run } : s));
      reload();
    } catch (e) {
      setActionError(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  // The run as it was after event `at` (only while time travelling).
  const world = useMemo(() => (at === null ? null : worldAt(events, at)), [events, at]);
  // Which actors are retired by now (the actor view does not say).
  const liveWorld = useFold(events);

  if (!state) return <main>{error ? <p class="error">{error}</p> : <p>Loading…</p>}</main>;
  const { project, run } = state;
  const tasks = world ? tasksAt(state.tasks, world) : state.tasks;
  const dagAgentStates = world ? Object.fromEntries([...world.actors].map(([id, v]) => [id, stateName(v)])) : agentStates;
  const selected = taskKey ? tasks.find((t) => t.key === taskKey) : undefined;
  const runStatus = run?.status ?? null;
  return (
    <main class="run">
      <div class="run-head">
        <h1>
          {project.name} <span class={`live live-${live}`}>{live}</span>
        </h1>
        <p class="muted">
          {project.workspace} · <code>{project.testCommand.join(' ')}</code>
        </p>
      </div>
      {error && <p class="error">{error}</p>}
      <div class="run-bar">
        <div class="run-state">
          Run:{' '}
          <span class={`badge status-${runStatus ?? 'idle'}`} data-testid="run-status">
            {runStatus ? statusWords(runStatus) : 'not started'}
          </span>
          {run?.summary && <span class="summary">{run.summary}</span>}
        </div>
        <div class="controls">
          {controlsFor(runStatus).map((c) => (
            <button key={c} type="button" disabled={busy || (c === 'start' && tasks.length === 0 && !project.goal)} onClick={() => void control(c)}>
              {c[0]!.toUpperCase() + c.slice(1)}
            </button>
          ))}
        </div>
        <Budget spent={state.usage.totals.costUsd} budget={project.config.budgetUsd} />
      </div>
      {actionError && <p class="error">{actionError}</p>}
      <Notices notices={notices} onDismiss={(seq) => setNotices((list) => list.filter((n) => n.seq !== seq))} />
      <TimeTravel events={events} at={at} playing={playing} onAt={setAt} onPlaying={setPlaying} />
      {world && <p class="travel-note">Showing the run as it was after event #{world.seq}{world.runStatus ? ` (run ${statusWords(world.runStatus)})` : ''}; the controls act on the run as it is now.</p>}
      <div class="tabs" role="tablist">
        {TABS.map((t) => (
          <button key={t.id} type="button" role="tab" aria-selected={tab === t.id} class={tab === t.id ? 'tab on' : 'tab'} onClick={() => setTab(t.id)}>
            {t.label}
            {t.id === 'agents' ? ` (${state.actors.length})` : t.id === 'events' ? ` (${events.length})` : ''}
          </button>
        ))}
      </div>
      {tab === 'tasks' && (
        <div class={`run-body${selected ? ' with-panel' : ''}`}>
          {tasks.length === 0 ? (
            <p class="empty">
              {world ? 'No tasks yet at this point of the run.' : project.goal ? 'No tasks yet: starting the run plans them from the goal.' : 'No tasks: add them through POST /api/projects/:id/tasks.'}
            </p>
          ) : (
            <Dag tasks={tasks} agentStates={dagAgentStates} selected={taskKey} hrefOf={(key) => taskHref(projectId, key)} />
          )}
          {selected && <TaskPanel projectId={projectId} task={selected} events={events} runActive={!!runStatus && ACTIVE_RUN.includes(runStatus)} onChanged={reload} />}
          {taskKey && !selected && !world && <p class="error">No task “{taskKey}” in this project.</p>}
        </div>
      )}
      {tab === 'agents' && (
        <AgentsView
          actors={state.actors}
          stateOf={(a) => (world ? world.actors.get(a.id) : a.state)}
          retired={(a) => (world ?? liveWorld).retired.has(a.id)}
        />
      )}
      {tab === 'events' && <EventsView events={events} live={live} />}
    </main>
  );
}

function Budget({ spent, budget }: { spent: number | null; budget: number | null }) {
  if (budget === null) return <div class="budget">Spent {usd(spent)} · no budget set</div>;
  const fraction = spent === null ? 0 : Math.min(1, spent / budget);
  const level = fraction >= 1 ? 'over' : fraction >= 0.8 ? 'high' : 'ok';
  return (
    <div class="budget" title="spent of config.budgetUsd">
      <div class={`bar budget-${level}`} role="meter" aria-label="budget" aria-valuemin={0} aria-valuemax={budget} aria-valuenow={spent ?? 0}>
        <div class="bar-fill" style={{ width: `${Math.round(fraction * 100)}%` }} />
      </div>
      <span>
        {usd(spent)} of {usd(budget)}
      </span>
    </div>
  );
}

/**
 * The whole log folded, kept up to date by folding in only the events appended since the last
 * render (a live run's log grows one event at a time); folded again from the start otherwise.
 */
function useFold(events: readonly LogEvent[]): WorldAt {
  const fold = useRef({ world: emptyWorld(), count: 0, first: undefined as LogEvent | undefined });
  const f = fold.current;
  if (events[0] !== f.first || events.length < f.count || (f.count > 0 && events[f.count - 1]!.seq !== f.world.seq)) {
    fold.current = { world: emptyWorld(), count: 0, first: events[0] };
  }
  const g = fold.current;
  for (const e of events.slice(g.count)) foldEvent(g.world, e);
  g.count = events.length;
  return g.world;
}

function stateName(value: unknown): string {
  return stateText(value).split(', ')[0] ?? '';
}

/** The tasks as they were in `world`: those created by then, with their status, agent and attempt then. */
function tasksAt(tasks: Task[], world: WorldAt): Task[] {
  return tasks.flatMap((t) => {
    const then = world.tasks.get(t.key);
    if (!then) return [];
    return [{ ...t, status: then.status as TaskStatus, agentId: then.agentId, attempts: then.attempt, blockedReason: then.status === 'blocked' ? then.reason : null, review: then.status === 'review' ? t.review : null }];
  });
}

/** What an event changes at once; the reload that follows brings the rest. */
function applyEvent(s: State, e: TroupeEvent): State {
  const d = e.data;
  const key = typeof d.key === 'string' ? d.key : null;
  const patchTask = (patch: Partial<Task>) => (key ? { ...s, tasks: s.tasks.map((t) => (t.key === key ? { ...t, ...patch } : t)) } : s);
  if (e.type === 'task.status_changed') return patchTask({ status: d.to as TaskStatus, blockedReason: (d.blockedReason as string | undefined) ?? null });
  if (e.type === 'task.assigned') return patchTask({ agentId: String(d.agentId) });
  if (e.type === 'agent.state_changed') return { ...s, actors: s.actors.map((a) => (a.id === d.agentId ? { ...a, state: d.state } : a)) };
  if (e.type.startsWith('run.') && typeof d.status === 'string' && s.run && e.runId === s.run.id) {
    return { ...s, run: { ...s.run, status: d.status as RunStatus, summary: typeof d.summary === 'string' ? d.summary : s.run.summary } };
  }
  return s;
}
