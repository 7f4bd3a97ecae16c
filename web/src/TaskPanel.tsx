/**
 * A task's panel: its status and why, the timeline of its attempts (from the event log the run
 * view holds, see Timeline.tsx), the change it made (the unified diff, + and − lines coloured),
 * the last test run's output, and what a person can do about it: retry with
 * guidance (failed, blocked, cancelled), approve or reject with guidance (in review). It reads the
 * task's detail and diff again whenever the task moves (status, attempts, commit).
 */
import { useEffect, useState } from 'preact/hooks';
import { errorText, getJson, getText, postJson, taskPath } from './api.ts';
import type { LogEvent } from './replay.ts';
import { Diff, Timeline } from './Timeline.tsx';
import type { Task, TaskDetail, TestResult } from './types.ts';
import { statusWords, taskReason, usd } from './words.ts';

const RETRYABLE: readonly string[] = ['failed', 'blocked', 'cancelled'];

export function TaskPanel({ projectId, task, events, runActive, onChanged }: { projectId: string; task: Task; events: readonly LogEvent[]; runActive: boolean; onChanged: () => void }) {
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

      <h3>Timeline</h3>
      <Timeline projectId={projectId} taskKey={task.key} taskId={task.id} events={events} baseline={detail?.baseline} />

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
