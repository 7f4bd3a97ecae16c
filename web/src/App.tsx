/**
 * The dashboard's shell: a hash route (`#/` the projects, `#/p/<id>` a project's run,
 * `#/p/<id>/t/<key>` with a task's panel open) and the token prompt. Any 401 from the API swaps the
 * page for the prompt; once a token is given the views mount again and reload what they show.
 */
import { useEffect, useState } from 'preact/hooks';
import { onUnauthorized, setToken, token } from './api.ts';
import { ProjectsView } from './ProjectsView.tsx';
import { RunView } from './RunView.tsx';

export type Route = { view: 'projects' } | { view: 'run'; projectId: string; taskKey: string | null };

export function parseRoute(hash: string): Route {
  const m = /^#\/p\/([^/]+)(?:\/t\/([^/]+))?/.exec(hash);
  if (!m) return { view: 'projects' };
  return { view: 'run', projectId: decodeURIComponent(m[1]!), taskKey: m[2] ? decodeURIComponent(m[2]) : null };
}

export const projectHref = (id: string) => `#/p/${encodeURIComponent(id)}`;
export const taskHref = (id: string, key: string) => `${projectHref(id)}/t/${encodeURIComponent(key)}`;

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

export function App() {
  const route = useRoute();
  const [refused, setRefused] = useState<string | null>(null);
  const [epoch, setEpoch] = useState(0);
  useEffect(() => onUnauthorized((message) => setRefused(message)), []);

  if (refused !== null) {
    return (
      <TokenPrompt
        message={token() ? `The token was refused (${refused}).` : 'This service needs its API token (TROUPE_API_TOKEN).'}
        onToken={(t) => {
          setToken(t);
          setRefused(null);
          setEpoch((n) => n + 1);
        }}
      />
    );
  }
  return (
    <div class="page" key={epoch}>
      <header class="top">
        <a href="#/" class="brand">Troupe</a>
        <nav>
          <a href="#/">Projects</a> · <a href="/docs">API reference</a>
        </nav>
      </header>
      {route.view === 'projects' ? <ProjectsView /> : <RunView projectId={route.projectId} taskKey={route.taskKey} />}
    </div>
  );
}

function TokenPrompt(props: { message: string; onToken: (t: string) => void }) {
  const [value, setValue] = useState('');
  return (
    <form
      class="token-prompt"
      onSubmit={(e) => {
        e.preventDefault();
        if (value.trim()) props.onToken(value.trim());
      }}
    >
      <h1>Troupe</h1>
      <p>{props.message}</p>
      <label>
        API token
        <input type="password" name="token" autoComplete="off" autoFocus value={value} onInput={(e) => setValue(e.currentTarget.value)} />
      </label>
      <p class="hint">Kept in this tab only (sessionStorage) and sent as a bearer token to this service.</p>
      <button type="submit">Continue</button>
    </form>
  );
}
