/**
 * One project's run: the controls (start, pause, resume, cancel), the budget meter, the run's state
 * and summary, the task DAG and, when a task is picked, its panel. Everything is read from the API
 * once and then kept current from the project's event stream: each event moves what it names at
 * once (a task's status, its agent, the run's state) and a coalesced reload reads the rest.
 */
import { useEffect, useState } from 'preact/hooks';
import { errorText, eventsUrl, getJson, postJson, projectPath } from './api.ts';
import { taskHref } from './App.tsx';
import { Dag } from './Dag.tsx';
import { useCoalesced, useEvents } from './live.ts';
import { TaskPanel } from './TaskPanel.tsx';
import { ACTIVE_RUN, type Project, type Run, type RunStatus, type Task, type TaskStatus, type TroupeEvent, type UsageReport } from './types.ts';
import { statusWords, usd } from './words.ts';

interface State {
  project: Project;
  tasks: Task[];
  run: Run | null;
  usage: UsageReport;
}

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

  const load = async () => {
    try {
      const [project, { tasks }, { runs }, usage] = await Promise.all([
        getJson<Project>(projectPath(projectId)),
        getJson<{ tasks: Task[] }>(projectPath(projectId, '/tasks')),
        getJson<{ runs: Run[] }>(projectPath(projectId, '/runs')),
        getJson<UsageReport>(projectPath(projectId, '/usage')),
      ]);
      setState({ project, tasks, run: runs[0] ?? null, usage });
      setError(null);
    } catch (e) {
      setError(errorText(e));
    }
  };
  const reload = useCoalesced(() => void load(), 300);
  useEffect(() => {
    setState(null);
    void load();
  }, [projectId]);

  const live = useEvents(state ? (since) => eventsUrl(projectId, since) : null, (e) => {
    setState((s) => (s ? applyEvent(s, e) : s));
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

  if (!state) return <main>{error ? <p class="error">{error}</p> : <p>Loading…</p>}</main>;
  const { project, tasks, run } = state;
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
      <div class={`run-body${selected ? ' with-panel' : ''}`}>
        {tasks.length === 0 ? (
          <p class="empty">{project.goal ? 'No tasks yet: starting the run plans them from the goal.' : 'No tasks: add them through POST /api/projects/:id/tasks.'}</p>
        ) : (
          <Dag tasks={tasks} agentStates={agentStates} selected={taskKey} hrefOf={(key) => taskHref(projectId, key)} />
        )}
        {selected && <TaskPanel projectId={projectId} task={selected} runActive={!!runStatus && ACTIVE_RUN.includes(runStatus)} onChanged={reload} />}
        {taskKey && !selected && <p class="error">No task “{taskKey}” in this project.</p>}
      </div>
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

function stateName(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') return Object.entries(value).map(([k, v]) => `${k}.${stateName(v)}`)[0] ?? '';
  return '';
}

/** What an event changes at once; the reload that follows brings the rest. */
function applyEvent(s: State, e: TroupeEvent): State {
  const d = e.data;
  const key = typeof d.key === 'string' ? d.key : null;
  const patchTask = (patch: Partial<Task>) => (key ? { ...s, tasks: s.tasks.map((t) => (t.key === key ? { ...t, ...patch } : t)) } : s);
  if (e.type === 'task.status_changed') return patchTask({ status: d.to as TaskStatus, blockedReason: (d.blockedReason as string | undefined) ?? null });
  if (e.type === 'task.assigned') return patchTask({ agentId: String(d.agentId) });
  if (e.type.startsWith('run.') && typeof d.status === 'string' && s.run && e.runId === s.run.id) {
    return { ...s, run: { ...s.run, status: d.status as RunStatus, summary: typeof d.summary === 'string' ? d.summary : s.run.summary } };
  }
  return s;
}
