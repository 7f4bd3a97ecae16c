/**
 * The task panel's timeline: the task's attempts in order, folded (`timeline.ts`) from the event
 * log the run view already holds — per attempt the correction that led to it, each model call's
 * usage, the files written or refused, the test runs, the review and how it ended (commit, status).
 * Tests already failing on the base tree are said once at the top. Each attempt of the task's
 * current round can show what it wrote (`…/diff?attempt=N`, read when asked; 404: it wrote nothing).
 * Also the diff view the panel's whole-task change uses, so both colour + and − lines alike.
 */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, errorText, getText, taskPath } from './api.ts';
import type { LogEvent } from './replay.ts';
import { callTotals, taskTimeline, type Attempt, type ModelCall, type TestRun } from './timeline.ts';
import type { Baseline } from './types.ts';
import { blockedWords, statusWords, usd } from './words.ts';

const MAX_DIFF_LINES = 4000;
const FAILURES_SHOWN = 3;

export function Timeline({ projectId, taskKey, taskId, events, baseline }: { projectId: string; taskKey: string; taskId: string; events: readonly LogEvent[]; baseline: Baseline | null | undefined }) {
  const { attempts, currentRound } = useMemo(() => taskTimeline(events, taskId), [events, taskId]);
  const rounds = new Set(attempts.map((a) => a.round)).size;
  return (
    <section class="timeline" data-testid="timeline">
      {baseline && baselineFailing(baseline) && <BaselineNote baseline={baseline} />}
      {attempts.length === 0 ? (
        <p class="muted">No attempt yet.</p>
      ) : (
        <ol class="attempts">
          {attempts.map((a) => (
            <AttemptRow key={`${a.round}:${a.attempt}`} attempt={a} retried={rounds > 1} diffPath={a.round === currentRound ? taskPath(projectId, taskKey, `/diff?attempt=${a.attempt}`) : null} />
          ))}
        </ol>
      )}
    </section>
  );
}

function baselineFailing(b: Baseline): boolean {
  return b.failing.length > 0 || (b.failed ?? 0) > 0;
}

function BaselineNote({ baseline: b }: { baseline: Baseline }) {
  const names = b.failing.length ? `: ${b.failing.join(', ')}` : '';
  return (
    <p class="baseline" data-testid="baseline">
      Before any change, {b.failed ?? b.failing.length} test(s) were already failing on the base tree{b.commit ? ` (${b.commit.slice(0, 10)})` : ''}{names}. They are not this task’s doing.
    </p>
  );
}

function AttemptRow({ attempt: a, retried, diffPath }: { attempt: Attempt; retried: boolean; diffPath: string | null }) {
  const totals = callTotals(a.calls);
  return (
    <li class={`attempt${a.outcome ? ` ended-${a.outcome.status}` : ''}`} data-attempt={a.attempt} data-round={a.round}>
      <div class="attempt-head">
        <strong>
          Attempt {a.attempt}
          {retried ? ` (round ${a.round + 1})` : ''}
        </strong>
        {a.calls.length > 1 && (
          <span class="muted">
            {' '}
            · {a.calls.length} calls, {tokens(totals)} · {usd(totals.costUsd)}
          </span>
        )}
      </div>
      {a.correction && (
        <p class="tl-correction">
          Correction {a.correction.number} of {a.correction.maxAttempts} ({statusWords(a.correction.status)}){a.correction.errorSummary ? `, after: ${a.correction.errorSummary}` : ''}
        </p>
      )}
      {a.calls.map((c) => (
        <p key={c.seq} class="tl-call" data-testid="model-call">
          Model {c.model} ({c.purpose}): {tokens(c)} · {usd(c.costUsd)} · {seconds(c.durationMs)}
        </p>
      ))}
      {a.applied && (
        <div class="tl-files">
          Wrote{' '}
          {a.applied.files.map((f, i) => (
            <span key={f.path}>
              {i > 0 && ', '}
              <code>{f.path}</code> ({f.action}, {f.bytes} B)
            </span>
          ))}
          {a.applied.explanation && <blockquote class="tl-explanation">{a.applied.explanation}</blockquote>}
        </div>
      )}
      {a.rejected.map((r, i) => (
        <p key={i} class="tl-rejected">
          Files refused{r.path ? ` (${r.path})` : ''}: {r.reason}
        </p>
      ))}
      {a.tests.map((r) => (
        <TestLine key={r.seq} run={r} />
      ))}
      {a.review && (
        <p class="tl-review">
          Waited for review ({statusWords(a.review.reason)}){a.review.files.length ? `: ${a.review.files.join(', ')}` : ''}
        </p>
      )}
      {a.reviewed && (
        <p class="tl-review">
          {a.reviewed.decision === 'approved' ? 'Approved' : 'Rejected'}
          {a.reviewed.guidance ? ` with guidance: ${a.reviewed.guidance}` : ''}
        </p>
      )}
      {a.commit && (
        <p class="tl-commit">
          Committed <code>{a.commit.sha.slice(0, 10)}</code>: {a.commit.message.split('\n')[0]}
        </p>
      )}
      {a.outcome && (
        <p class="tl-outcome">
          Then <span class={`badge status-${a.outcome.status}`}>{statusWords(a.outcome.status)}</span>
          {a.outcome.blockedReason ? ` — ${blockedWords(a.outcome.blockedReason)}` : ''}
          {a.outcome.reason ? ` — ${a.outcome.reason}` : ''}
        </p>
      )}
      {diffPath && <AttemptDiff path={diffPath} attempt={a.attempt} />}
    </li>
  );
}

function TestLine({ run: r }: { run: TestRun }) {
  const counts = r.total === null ? 'counts not understood' : `${r.passed ?? '?'} passed, ${r.failed ?? '?'} failed of ${r.total}`;
  const failures = r.failures.slice(0, FAILURES_SHOWN);
  return (
    <div class="tl-test" data-testid="test-result">
      <p>
        Tests{r.phase === 'task' ? '' : ` (${r.phase})`}: <strong class={`tl-${r.status}`}>{statusWords(r.status)}</strong> · {counts} · {seconds(r.durationMs)}
        {r.verified ? '' : ' · not verified'}
      </p>
      {failures.length > 0 && (
        <ul class="tl-failures">
          {failures.map((f, i) => (
            <li key={i}>
              {f.name}
              {f.message ? <span class="muted"> — {f.message}</span> : null}
            </li>
          ))}
          {r.failures.length > FAILURES_SHOWN && <li class="muted">… {r.failures.length - FAILURES_SHOWN} more</li>}
        </ul>
      )}
    </div>
  );
}

/** What one attempt wrote, read the first time it is opened. */
function AttemptDiff({ path, attempt }: { path: string; attempt: number }) {
  const [open, setOpen] = useState(false);
  const [text, setText] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  useEffect(() => {
    setText(null);
    setNote(null);
  }, [path]);
  useEffect(() => {
    if (!open || text !== null || note !== null) return undefined;
    let current = true;
    getText(path).then(
      (t) => current && setText(t),
      (e: unknown) => current && setNote(e instanceof ApiError && e.status === 404 ? 'This attempt wrote nothing.' : `(no diff: ${errorText(e)})`),
    );
    return () => {
      current = false;
    };
  }, [open, path, text, note]);
  return (
    <div class="tl-diff">
      <button type="button" class="link" aria-expanded={open} onClick={() => setOpen(!open)}>
        {open ? 'Hide' : 'Show'} the diff of attempt {attempt}
      </button>
      {open && (note ? <p class="muted">{note}</p> : text === null ? <p class="muted">Loading…</p> : <Diff text={text} testId="attempt-diff" />)}
    </div>
  );
}

function tokens(c: Pick<ModelCall, 'inputTokens' | 'outputTokens' | 'cacheReadTokens' | 'cacheWriteTokens'>): string {
  const cache = c.cacheReadTokens || c.cacheWriteTokens ? ` · cache ${c.cacheReadTokens.toLocaleString('en')} read, ${c.cacheWriteTokens.toLocaleString('en')} written` : ' · no cache';
  return `${c.inputTokens.toLocaleString('en')} in, ${c.outputTokens.toLocaleString('en')} out${cache}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 1000 ? 2 : 1)} s`;
}

/** A unified diff, + and − lines coloured; the first MAX_DIFF_LINES lines of a long one. */
export function Diff({ text, testId = 'diff' }: { text: string; testId?: string }) {
  if (!text.trim()) return <p class="muted">No change.</p>;
  const lines = text.split('\n');
  const shown = lines.slice(0, MAX_DIFF_LINES);
  return (
    <pre class="diff" data-testid={testId}>
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
