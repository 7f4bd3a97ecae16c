/**
 * The projects: one row each (name, run status, progress, cost, last activity), kept current from
 * the all-projects event stream, and the create form. A 400 from the API lands on the field its
 * `details[].path` names; any other refusal shows above the form.
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, errorText, getJson, postJson, projectPath, token, type FieldIssue } from './api.ts';
import { projectHref } from './App.tsx';
import { useCoalesced, useEvents } from './live.ts';
import type { Project, Run } from './types.ts';
import { ago, statusWords, usd } from './words.ts';

const allEventsUrl = () => {
  const t = token();
  return t ? `/api/events?access_token=${encodeURIComponent(t)}` : '/api/events';
};

export function ProjectsView() {
  const [projects, setProjects] = useState<Project[] | null>(null);
  const [activity, setActivity] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);

  const load = async () => {
    try {
      const { projects: list } = await getJson<{ projects: Project[] }>('/api/projects');
      setProjects(list);
      setError(null);
      const latest = await Promise.all(list.map((p) => getJson<{ runs: Run[] }>(projectPath(p.id, '/runs')).then((r) => [p.id, r.runs[0]] as const)));
      setActivity((prev) => {
        const next = { ...prev };
        for (const [id, run] of latest) {
          const at = run ? (run.endedAt ?? run.startedAt) : undefined;
          if (at && !(next[id] && next[id] > at)) next[id] = at;
        }
        return next;
      });
    } catch (e) {
      setError(errorText(e));
    }
  };
  const reload = useCoalesced(() => void load(), 400);
  useEffect(() => void load(), []);
  const live = useEvents(projects ? allEventsUrl : null, (e) => {
    setActivity((prev) => ({ ...prev, [e.projectId]: e.at }));
    reload();
  }, reload);

  return (
    <main class="projects">
      <section>
        <h1>
          Projects <span class={`live live-${live}`}>{live}</span>
        </h1>
        {error && <p class="error">{error}</p>}
        {projects === null ? (
          <p>Loading…</p>
        ) : projects.length === 0 ? (
          <p class="empty">No projects yet: create one below (or with `troupe run`).</p>
        ) : (
          <table class="project-list">
            <thead>
              <tr>
                <th>Name</th>
                <th>Run</th>
                <th>Progress</th>
                <th>Cost</th>
                <th>Last activity</th>
              </tr>
            </thead>
            <tbody>
              {projects.map((p) => (
                <ProjectRow key={p.id} project={p} lastActivity={activity[p.id] ?? p.createdAt} />
              ))}
            </tbody>
          </table>
        )}
      </section>
      <CreateProject onCreated={() => void load()} />
    </main>
  );
}

function ProjectRow({ project: p, lastActivity }: { project: Project; lastActivity: string }) {
  const g = p.progress;
  return (
    <tr data-project={p.name}>
      <td>
        <a href={projectHref(p.id)}>{p.name}</a>
      </td>
      <td>
        <span class={`badge status-${p.status}`}>{statusWords(p.status)}</span>
      </td>
      <td>
        <div class="bar" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={g.percent}>
          <div class="bar-fill" style={{ width: `${g.percent}%` }} />
        </div>
        <span class="muted">
          {g.completed}/{g.total} done{g.review ? `, ${g.review} in review` : ''}
          {g.failed + g.blocked ? `, ${g.failed + g.blocked} stuck` : ''}
        </span>
      </td>
      <td>{usd(p.usage.costUsd)}</td>
      <td title={lastActivity}>{ago(lastActivity)}</td>
    </tr>
  );
}

type Field = 'name' | 'testCommand' | 'workspace' | 'config';
const FIELDS: readonly Field[] = ['name', 'testCommand', 'workspace', 'config'];

/** Which form field an API issue path (`name`, `config.maxConcurrency`, …) belongs to. */
function fieldOf(path: string): Field | null {
  const head = path.split('.')[0] as Field;
  return FIELDS.includes(head) ? head : null;
}

function CreateProject(props: { onCreated: (p: Project) => void }) {
  const [values, setValues] = useState<Record<Field, string>>({ name: '', testCommand: 'npm test', workspace: '', config: '' });
  const [issues, setIssues] = useState<Partial<Record<Field, string[]>>>({});
  const [general, setGeneral] = useState<string | null>(null);
  const [created, setCreated] = useState<Project | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async () => {
    setIssues({});
    setGeneral(null);
    setCreated(null);
    const body: Record<string, unknown> = { name: values.name, testCommand: values.testCommand };
    if (values.workspace.trim()) body.workspace = values.workspace.trim();
    if (values.config.trim()) {
      try {
        body.config = JSON.parse(values.config);
      } catch (e) {
        setIssues({ config: [`not valid JSON: ${errorText(e)}`] });
        return;
      }
    }
    setBusy(true);
    try {
      const p = await postJson<Project>('/api/projects', body);
      setCreated(p);
      setValues((v) => ({ ...v, name: '' }));
      props.onCreated(p);
    } catch (e) {
      if (e instanceof ApiError && e.details.length) showIssues(e.details);
      else setGeneral(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  const showIssues = (details: FieldIssue[]) => {
    const byField: Partial<Record<Field, string[]>> = {};
    const rest: string[] = [];
    for (const d of details) {
      const f = fieldOf(d.path);
      if (f) (byField[f] ??= []).push(f === d.path ? d.message : `${d.path}: ${d.message}`);
      else rest.push(`${d.path}: ${d.message}`);
    }
    setIssues(byField);
    setGeneral(rest.length ? rest.join('; ') : null);
  };

  const input = (f: Field, label: string, hint: string, multiline = false) => {
    const errs = issues[f];
    const set = (v: string) => setValues((prev) => ({ ...prev, [f]: v }));
    const attrs = { name: f, id: `create-${f}`, value: values[f], 'aria-invalid': errs ? true : undefined, 'aria-describedby': `create-${f}-msg` };
    return (
      <div class={`field${errs ? ' invalid' : ''}`}>
        <label for={`create-${f}`}>{label}</label>
        {multiline ? (
          <textarea {...attrs} rows={3} placeholder={hint} onInput={(e) => set(e.currentTarget.value)} />
        ) : (
          <input {...attrs} placeholder={hint} onInput={(e) => set(e.currentTarget.value)} />
        )}
        <div class="field-msg" id={`create-${f}-msg`} data-field={f}>
          {errs?.join('; ')}
        </div>
      </div>
    );
  };

  return (
    <section class="create">
      <h2>New project</h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        {input('name', 'Name', 'calc')}
        {input('testCommand', 'Test command', 'npm test')}
        {input('workspace', 'Workspace (optional)', 'an absolute or relative directory; default: a new one in the data dir')}
        {input('config', 'Config JSON (optional)', '{"maxConcurrency": 3, "budgetUsd": 5}', true)}
        {general && <p class="error">{general}</p>}
        {created && (
          <p class="ok">
            Created <a href={projectHref(created.id)}>{created.name}</a>: add tasks to it through the API (POST /api/projects/{created.id}/tasks).
          </p>
        )}
        <button type="submit" disabled={busy}>
          Create project
        </button>
      </form>
    </section>
  );
}
