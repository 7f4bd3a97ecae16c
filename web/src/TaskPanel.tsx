/**
 * A task's panel: its status and why, attempts, the change it made (the unified diff, + and −
 * lines coloured), the last test run's output, and what a person can do about it: retry with
 * guidance (failed, blocked, cancelled), approve or reject with guidance (in review). It reads the
 * task's detail and diff again whenever the task moves (status, attempts, commit).
 */
import { useEffect, useState } from 'preact/hooks';
import { errorText, getJson, getText, postJson, taskPath } from './api.ts';
import type { Task, TaskDetail, TestResult } from './types.ts';
import { statusWords, taskReason, usd } from './words.ts';

const RETRYABLE: readonly string[] = ['failed', 'blocked', 'cancelled'];
const MAX_DIFF_LINES = 4000;

export function TaskPanel({ projectId, task, runActive, onChanged }: { projectId: string; task: Task; runActive: boolean; onChanged: () => void }) {
  const [detail, setDetail] = useState<TaskDetail | null>(null);
  const [diff, setDiff] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [guidance, setGuidance] = useState('');
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<string | null>(null);
  const version = `${task.key}|${task.status}|${task.attempts}|${task.commit ?? ''}`;

  useEffect(() => {
    let current = true;
    setError(null);
    Promise.all([getJson<TaskDetail>(taskPath(projectId, task.key)), getText(taskPath(projectId, task.key, '/diff')).catch((e: unknown) => `(no diff: ${errorText(e)})`)]).then(
      ([d, text]) => {
        if (!current) return;
        setDetail(d);
        setDiff(text);
      },
      (e: unknown) => current && setError(errorText(e)),
    );
    return () => {
      current = false;
    };
  }, [projectId, version]);
  useEffect(() => {
    setGuidance('');
    setDone(null);
  }, [task.key]);

  const act = async (what: 'retry' | 'approve' | 'reject') => {
    setBusy(true);
    setError(null);
    try {
      const body = what === 'approve' ? undefined : guidance.trim() ? { guidance: guidance.trim() } : {};
      await postJson<Task>(taskPath(projectId, task.key, `/${what}`), body);
      setDone(what === 'retry' ? 'Queued again.' : what === 'approve' ? 'Approved: merging.' : 'Rejected.');
      setGuidance('');
      onChanged();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  const reason = taskReason(task);
  const inReview = task.status === 'review';
  const retryable = RETRYABLE.includes(task.status);
  const test = lastTest(detail?.testResults ?? []);
  return (
    <aside class="panel" aria-label={`task ${task.key}`}>
      <div class="panel-head">
        <h2>{task.key}</h2>
        <a href={`#/p/${encodeURIComponent(projectId)}`} class="close" aria-label="close">
          ×
        </a>
      </div>
      <p class="title">{task.title}</p>
      <dl class="facts">
        <dt>Status</dt>
        <dd>
          <span class={`badge status-${task.status}`} data-testid="task-status">
            {statusWords(task.status)}
          </span>
        </dd>
        {reason && (
          <>
            <dt>Why</dt>
            <dd class="reason">{reason}</dd>
          </>
        )}
        <dt>Attempts</dt>
        <dd>{task.attempts}</dd>
        <dt>Agent</dt>
        <dd>{task.agentId ?? `${task.agentType} (not assigned)`}</dd>
        {task.guidance && (
          <>
            <dt>Guidance</dt>
            <dd>{task.guidance}</dd>
          </>
        )}
        {detail && (
          <>
            <dt>Cost</dt>
            <dd>{usd(detail.usage.costUsd)}</dd>
          </>
        )}
      </dl>

      {(inReview || retryable) && (
        <form
          class="actions"
          onSubmit={(e) => {
            e.preventDefault();
          }}
        >
          <label for="guidance">{inReview ? 'Guidance for a correction (reject)' : 'Guidance for the retry (optional)'}</label>
          <textarea id="guidance" name="guidance" rows={2} value={guidance} onInput={(e) => setGuidance(e.currentTarget.value)} />
          <div class="buttons">
            {inReview && (
              <>
                <button type="button" disabled={busy} onClick={() => void act('approve')}>
                  Approve
                </button>
                <button type="button" disabled={busy} onClick={() => void act('reject')}>
                  Reject
                </button>
              </>
            )}
            {retryable && (
              <button type="button" disabled={busy} onClick={() => void act('retry')}>
                Retry{runActive ? '' : ' (then start a run)'}
              </button>
            )}
          </div>
        </form>
      )}
      {done && <p class="ok">{done}</p>}
      {error && <p class="error">{error}</p>}

      <h3>Change</h3>
      {diff === null ? <p class="muted">Loading…</p> : <Diff text={diff} />}

      <h3>Last test run</h3>
      {test ? <TestOutput result={test} /> : <p class="muted">No test run yet.</p>}
    </aside>
  );
}

/** The latest run of the task's own tests (a merge re-test or the baseline only when nothing else ran). */
function lastTest(results: TestResult[]): TestResult | undefined {
  const own = results.filter((r) => r.phase !== 'baseline');
  return (own.length ? own : results).at(-1);
}

function Diff({ text }: { text: string }) {
  if (!text.trim()) return <p class="muted">No change.</p>;
  const lines = text.split('\n');
  const shown = lines.slice(0, MAX_DIFF_LINES);
  return (
    <pre class="diff" data-testid="diff">
      {shown.map((line, i) => (
        <span key={i} class={diffClass(line)}>
          {line}
          {'\n'}
        </span>
      ))}
      {lines.length > MAX_DIFF_LINES && <span class="muted">… {lines.length - MAX_DIFF_LINES} more lines (GET the diff route for all of it)</span>}
    </pre>
  );
}

function diffClass(line: string): string {
  if (line.startsWith('+++') || line.startsWith('---')) return 'd-file';
  if (line.startsWith('diff --git')) return 'd-head';
  if (line.startsWith('@@')) return 'd-hunk';
  if (line.startsWith('+')) return 'd-add';
  if (line.startsWith('-')) return 'd-del';
  return 'd-ctx';
}

function TestOutput({ result: r }: { result: TestResult }) {
  const counts = r.total === null ? 'counts not understood' : `${r.passed ?? '?'} passed, ${r.failed ?? '?'} failed of ${r.total}`;
  const excerpt = r.output.length > 4000 ? `…${r.output.slice(-4000)}` : r.output;
  return (
    <div class="test">
      <p>
        Attempt {r.attempt} ({r.phase}): <strong>{statusWords(r.status)}</strong> · {counts} · {(r.durationMs / 1000).toFixed(1)} s{r.verified ? '' : ' · not verified'}
      </p>
      <pre class="output">{excerpt || '(no output)'}</pre>
    </div>
  );
}
