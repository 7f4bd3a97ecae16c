/**
 * Live progress of a run on a terminal, from its events. Three faces: a redrawn panel on a TTY
 * (a line per task with status, agent, phase, attempt and a spinner, and under it why it ended or
 * what it is doing; a progress bar; tokens and cost), plain log lines otherwise, or the events
 * themselves as JSON lines. Every face counts the run's tokens and cost (the summary prints them).
 */
import type { BlockedReason, EventDataMap, Progress, TroupeEvent } from '../events/types.ts';

export type ProgressMode = 'tty' | 'plain' | 'json';

interface TaskLine {
  key: string;
  title: string;
  status: string;
  agentId: string | null;
  attempt: number;
  /** Why the task failed, blocked or completed unverified (a sentence). */
  reason: string | null;
  /** What its worker is doing now (in-flight tasks only): `generating`, `testing`, `merging` … */
  phase: string | null;
  /** The latest thing worth a glance while it runs: the model's explanation, the last test result. */
  note: string | null;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const MARK: Record<string, string> = { completed: '✔', failed: '✖', blocked: '■', cancelled: '○', pending: '·', review: '?' };

/** Words for a blocked reason, when the event carries no sentence of its own. */
const BLOCKED_WORDS: Record<BlockedReason, string> = {
  attempts_exhausted: 'every attempt failed',
  budget_exhausted: "the run's budget is spent",
  dependency_failed: 'a task it depends on did not complete',
  merge_conflict: 'its change could not be merged into the workspace',
  review_rejected: 'a reviewer rejected its change',
};

/** The worker machine's states (src/machines/worker.ts) as the phase a person reads. */
const PHASES: Record<string, string> = {
  preparing: 'preparing',
  generating: 'generating',
  applying: 'applying',
  testing: 'testing',
  evaluating: 'testing',
  correcting: 'correcting',
  exhausted: 'giving up',
  committing: 'merging',
  landing: 'merging',
  discarding: 'discarding',
  releasing: 'releasing',
};

/** A task's reason in one sentence: the event's own, else words for its blocked reason. */
export function reasonText(reason: string | null | undefined, blockedReason: string | null | undefined): string | null {
  if (reason) return reason;
  if (blockedReason) return BLOCKED_WORDS[blockedReason as BlockedReason] ?? blockedReason.replace(/_/g, ' ');
  return null;
}

/** One line of text: whitespace runs folded, at most `max` characters. */
export function oneLine(s: string, max: number): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

type TestResult = EventDataMap['test.result'];

/** "2 of 10 failed", "3 passed", or null when the runner's output gave no counts. */
function counts(d: TestResult): string | null {
  if (d.status === 'passed') {
    if (d.passed === null) return null;
    return d.total !== null ? `${d.passed} of ${d.total} passed` : `${d.passed} passed`;
  }
  const failing = d.failed === null && d.errors === null ? null : (d.failed ?? 0) + (d.errors ?? 0);
  if (failing === null) return null;
  if (d.total !== null) return `${failing} of ${d.total} failed`;
  return d.passed !== null ? `${failing} failed, ${d.passed} passed` : `${failing} failed`;
}

function firstFailure(d: TestResult): string {
  const f = d.failures[0];
  if (!f) return '';
  return ` — \`${oneLine(f.name, 80)}\`${f.message ? `: ${oneLine(f.message, 160)}` : ''}`;
}

function exitCodeOf(d: TestResult): number | null {
  const code = (d as { exitCode?: unknown }).exitCode;
  return typeof code === 'number' ? code : null;
}

/** A test result in words; never a made-up "0 passed, 0 failed". */
export function testText(d: TestResult): string {
  if (d.phase === 'baseline') {
    if (d.status === 'passed') return `baseline passed${d.total !== null ? ` (${d.total} tests)` : ''}`;
    if (d.status === 'no_tests') return 'baseline: no tests found';
    if (d.status === 'timeout') return 'baseline: the tests timed out before any change';
    const n = d.failed ?? (d.failures.length > 0 ? d.failures.length : null);
    const names = d.failures.map((f) => oneLine(f.name, 60)).slice(0, 5);
    const more = d.failures.length > names.length ? ', …' : '';
    if (n !== null) return `baseline: ${n} test(s) already failing before any change${names.length > 0 ? `: ${names.join(', ')}${more}` : ''}`;
    return `baseline: tests ${d.status} before any change (${unknownCounts(d)})`;
  }
  const verb = d.status === 'timeout' ? 'timed out' : d.status === 'no_tests' ? 'found none' : d.status;
  if (d.status === 'timeout' || d.status === 'no_tests') return `tests ${verb}`;
  const c = counts(d);
  if (c !== null) return `tests ${verb}: ${c}${d.status === 'passed' ? '' : firstFailure(d)}`;
  if (d.status === 'passed') return 'tests passed';
  return `tests ${verb} (${unknownCounts(d)})${firstFailure(d)}`;
}

function unknownCounts(d: TestResult): string {
  const code = exitCodeOf(d);
  return `${code !== null ? `exit code ${code}; ` : ''}counts not understood`;
}

export class ProgressView {
  private readonly tasks = new Map<string, TaskLine>();
  private readonly keyOf = new Map<string, string>();
  /** agentId → the key of the task it was last assigned. */
  private readonly taskOfAgent = new Map<string, string>();
  private progress: Progress | null = null;
  private tokensIn = 0;
  private tokensOut = 0;
  private cost = 0;
  private unpriced = false;
  private runStatus = 'starting';
  private baseline: string | null = null;
  private frame = 0;
  private drawnLines = 0;
  private timer: NodeJS.Timeout | undefined;
  private shared = false;

  constructor(
    private readonly mode: ProgressMode,
    private readonly out: NodeJS.WriteStream | { write(s: string): boolean; columns?: number },
  ) {
    if (mode === 'tty') {
      this.timer = setInterval(() => this.draw(), 100);
      this.timer.unref();
    }
  }

  /** Shared mode commits in the workspace: its last phase is "committing", not "merging". */
  setIsolation(isolation: 'worktree' | 'shared'): void {
    this.shared = isolation === 'shared';
  }

  /** Feeds one event. */
  onEvent(e: TroupeEvent): void {
    // Every face keeps the state: the JSON face's summary counts tokens too.
    const line = this.apply(e);
    if (this.mode === 'json') this.out.write(`${JSON.stringify(e)}\n`);
    else if (this.mode === 'plain' && line) this.out.write(`${line}\n`);
  }

  /** Final draw; stops the spinner. */
  finish(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.mode === 'tty') this.draw();
  }

  totals(): { inputTokens: number; outputTokens: number; costUsd: number | null } {
    return { inputTokens: this.tokensIn, outputTokens: this.tokensOut, costUsd: this.unpriced ? null : round(this.cost) };
  }

  /** Updates the state; returns a plain log line for events worth one. */
  private apply(e: TroupeEvent): string | null {
    const key = e.taskId ? (this.keyOf.get(e.taskId) ?? e.taskId) : '';
    switch (e.type) {
      case 'run.started':
      case 'run.pausing':
      case 'run.paused':
      case 'run.resumed':
      case 'run.cancelled':
        this.runStatus = e.data.status;
        return `run ${e.data.status}`;
      case 'run.completed':
      case 'run.blocked':
      case 'run.failed':
        this.runStatus = e.data.status;
        return `run ${e.data.status}: ${e.data.summary}`;
      case 'run.planned':
        return `planned ${e.data.tasks.length} task(s): ${e.data.tasks.join(', ')}`;
      case 'task.created':
        if (e.taskId) this.keyOf.set(e.taskId, e.data.key);
        this.tasks.set(e.data.key, { key: e.data.key, title: e.data.title, status: 'pending', agentId: null, attempt: 0, reason: null, phase: null, note: null });
        return null;
      case 'task.assigned': {
        const t = this.tasks.get(e.data.key);
        if (t) {
          t.agentId = e.data.agentId;
          t.phase = 'preparing';
        }
        this.taskOfAgent.set(e.data.agentId, e.data.key);
        return `${e.data.key}: assigned to ${e.data.agentId}`;
      }
      case 'task.status_changed': {
        const t = this.tasks.get(e.data.key);
        const why = reasonText(e.data.reason, e.data.blockedReason);
        if (t) {
          t.status = e.data.to;
          t.reason = why;
          if (e.data.to !== 'in_progress') {
            t.phase = null;
            t.note = null;
          }
        }
        const code = e.data.blockedReason ? ` (${e.data.blockedReason})` : '';
        return `${e.data.key}: ${e.data.from} → ${e.data.to}${code}${why ? `: ${oneLine(why, 400)}` : ''}`;
      }
      case 'llm.usage':
        this.tokensIn += e.data.inputTokens + e.data.cacheReadTokens + e.data.cacheWriteTokens;
        this.tokensOut += e.data.outputTokens;
        if (e.data.costUsd === null) this.unpriced = true;
        else this.cost += e.data.costUsd;
        return null;
      case 'test.result': {
        const text = testText(e.data);
        if (e.data.phase === 'baseline') {
          this.baseline = text;
          return text;
        }
        const t = this.tasks.get(key);
        if (t) {
          if (e.data.phase === 'task') t.attempt = Math.max(t.attempt, e.data.attempt);
          t.note = text;
        }
        return e.data.phase === 'merge' ? `${key}: after the merge, ${text}` : `${key}: attempt ${e.data.attempt} ${text}`;
      }
      case 'correction.attempt': {
        // Correction n leads to attempt n + 1.
        const t = this.tasks.get(key);
        if (t && e.data.status === 'started') t.attempt = Math.max(t.attempt, e.data.attempt + 1);
        return e.data.status === 'started' ? `${key}: correction ${e.data.attempt}/${e.data.maxAttempts}` : null;
      }
      case 'files.applied': {
        const t = this.tasks.get(key);
        const said = e.data.explanation ? `: ${oneLine(e.data.explanation, 120)}` : '';
        if (t) {
          t.attempt = Math.max(t.attempt, e.data.attempt);
          t.note = `wrote ${e.data.files.length} file(s)${said}`;
        }
        return `${key}: attempt ${e.data.attempt} wrote ${e.data.files.length} file(s)${said}`;
      }
      case 'files.rejected': {
        const t = this.tasks.get(key);
        if (t) t.note = `files refused: ${oneLine(e.data.reason, 120)}`;
        return `${key}: files refused (${e.data.reason})`;
      }
      case 'commit.created':
        return `${key}: committed ${e.data.sha.slice(0, 10)}`;
      case 'budget.exceeded':
        return `budget exceeded: $${e.data.spentUsd} of $${e.data.budgetUsd}`;
      case 'progress':
        this.progress = e.data;
        return null;
      case 'agent.state_changed': {
        const taskKey = this.taskOfAgent.get(e.data.agentId);
        const t = taskKey ? this.tasks.get(taskKey) : undefined;
        if (!t || t.agentId !== e.data.agentId || typeof e.data.state !== 'string') return null;
        if (e.data.state === 'idle') {
          t.phase = null;
          return null;
        }
        const phase = e.data.state === 'committing' && this.shared ? 'committing' : (PHASES[e.data.state] ?? e.data.state);
        t.phase = phase;
        if (e.data.state === 'generating') t.attempt = Math.max(t.attempt, 1);
        return null;
      }
      case 'task.review_requested':
        return `${e.data.key}: waiting for review (${e.data.reason}: ${e.data.files.join(', ')})`;
      case 'task.reviewed':
        return `${e.data.key}: ${e.data.decision}${e.data.guidance ? ` (${e.data.guidance})` : ''}`;
      case 'agent.created':
      case 'agent.retired':
        return null;
    }
  }

  private draw(): void {
    this.frame = (this.frame + 1) % SPINNER.length;
    const columns = (this.out as { columns?: number }).columns;
    const width = columns !== undefined && columns >= 40 ? columns : 100;
    const lines: string[] = [];
    if (this.baseline) lines.push(clip(`  ${this.baseline}`, width));
    const keyWidth = Math.min(24, Math.max(4, ...[...this.tasks.keys()].map((k) => k.length)));
    const indent = ' '.repeat(keyWidth + 4);
    for (const t of this.tasks.values()) {
      const inFlight = t.status === 'in_progress';
      const mark = inFlight ? SPINNER[this.frame]! : (MARK[t.status] ?? ' ');
      const agent = t.agentId ?? '';
      const attempt = t.attempt > 1 ? ` (attempt ${t.attempt})` : '';
      const doing = inFlight && t.phase ? `${t.phase}${attempt}` : !inFlight && t.attempt > 0 ? `${t.attempt} attempt(s)` : '';
      lines.push(clip(`${mark} ${t.key.padEnd(keyWidth)}  ${t.status.padEnd(11)} ${agent.padEnd(12)} ${doing}`.trimEnd(), width));
      const under = inFlight ? t.note : t.reason;
      if (under) lines.push(clip(`${indent}${inFlight ? '' : '↳ '}${oneLine(under, width)}`, width));
    }
    const p = this.progress;
    const done = p ? p.completed : 0;
    const total = p ? p.total : this.tasks.size;
    const barWidth = 24;
    const filled = total === 0 ? 0 : Math.round((done / total) * barWidth);
    const cost = this.unpriced ? 'cost n/a (unpriced model)' : `$${round(this.cost).toFixed(4)}`;
    lines.push(
      clip(`[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}] ${done}/${total} ${p?.percent ?? 0}%  run ${this.runStatus}  tokens ${kilo(this.tokensIn)} in / ${kilo(this.tokensOut)} out  ${cost}`, width),
    );
    let text = this.drawnLines > 0 ? `\x1b[${this.drawnLines}A\r` : '';
    // Each line cleared as it is written, and whatever a taller earlier frame left below.
    text += lines.map((l) => `\x1b[2K${l}`).join('\n') + '\n\x1b[J';
    this.drawnLines = lines.length;
    this.out.write(text);
  }
}

function clip(s: string, width: number): string {
  return s.length > width ? `${s.slice(0, width - 1)}…` : s;
}

function kilo(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(1)}k` : String(n);
}

function round(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
