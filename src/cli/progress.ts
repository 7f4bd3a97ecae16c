/**
 * Live progress of a run on a terminal, from its events. Three faces: a redrawn panel on a TTY
 * (a line per task with status, agent, attempt and a spinner; a progress bar; tokens and cost),
 * plain log lines otherwise, or the events themselves as JSON lines.
 */
import type { Progress, TroupeEvent } from '../events/types.ts';

export type ProgressMode = 'tty' | 'plain' | 'json';

interface TaskLine {
  key: string;
  title: string;
  status: string;
  agentId: string | null;
  attempt: number;
  reason: string | null;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const MARK: Record<string, string> = { completed: '✔', failed: '✖', blocked: '■', cancelled: '○', pending: '·' };

export class ProgressView {
  private readonly tasks = new Map<string, TaskLine>();
  private readonly keyOf = new Map<string, string>();
  private progress: Progress | null = null;
  private tokensIn = 0;
  private tokensOut = 0;
  private cost = 0;
  private unpriced = false;
  private runStatus = 'starting';
  private frame = 0;
  private drawnLines = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly mode: ProgressMode,
    private readonly out: NodeJS.WriteStream | { write(s: string): boolean; columns?: number },
  ) {
    if (mode === 'tty') {
      this.timer = setInterval(() => this.draw(), 100);
      this.timer.unref();
    }
  }

  /** Feeds one event. */
  onEvent(e: TroupeEvent): void {
    if (this.mode === 'json') {
      this.out.write(`${JSON.stringify(e)}\n`);
      return;
    }
    const line = this.apply(e);
    if (this.mode === 'plain' && line) this.out.write(`${line}\n`);
  }

  /** Final draw; stops the spinner. */
  finish(): void {
    clearInterval(this.timer);
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
        this.tasks.set(e.data.key, { key: e.data.key, title: e.data.title, status: 'pending', agentId: null, attempt: 0, reason: null });
        return null;
      case 'task.assigned': {
        const t = this.tasks.get(e.data.key);
        if (t) t.agentId = e.data.agentId;
        return `${e.data.key}: assigned to ${e.data.agentId}`;
      }
      case 'task.status_changed': {
        const t = this.tasks.get(e.data.key);
        if (t) {
          t.status = e.data.to;
          t.reason = e.data.blockedReason ?? e.data.reason ?? null;
        }
        const why = e.data.blockedReason ? ` (${e.data.blockedReason})` : e.data.to === 'failed' && e.data.reason ? ` (${e.data.reason})` : '';
        return `${e.data.key}: ${e.data.from} → ${e.data.to}${why}`;
      }
      case 'llm.usage':
        this.tokensIn += e.data.inputTokens + e.data.cacheReadTokens + e.data.cacheWriteTokens;
        this.tokensOut += e.data.outputTokens;
        if (e.data.costUsd === null) this.unpriced = true;
        else this.cost += e.data.costUsd;
        return null;
      case 'test.result': {
        const t = this.tasks.get(key);
        if (t) t.attempt = e.data.attempt;
        return `${key}: attempt ${e.data.attempt} tests ${e.data.status} (${e.data.passed} passed, ${e.data.failed} failed)`;
      }
      case 'correction.attempt':
        return e.data.status === 'started' ? `${key}: correction ${e.data.attempt}/${e.data.maxAttempts}` : null;
      case 'files.rejected':
        return `${key}: files refused (${e.data.reason})`;
      case 'commit.created':
        return `${key}: committed ${e.data.sha.slice(0, 10)}`;
      case 'budget.exceeded':
        return `budget exceeded: $${e.data.spentUsd} of $${e.data.budgetUsd}`;
      case 'progress':
        this.progress = e.data;
        return null;
      case 'agent.state_changed': {
        if (e.data.state === 'generating') {
          const t = [...this.tasks.values()].find((x) => x.agentId === e.data.agentId && x.status === 'in_progress');
          if (t) t.attempt = Math.max(t.attempt, 1);
        }
        return null;
      }
      case 'task.review_requested':
        return `${e.data.key}: waiting for review (${e.data.reason}: ${e.data.files.join(', ')})`;
      case 'task.reviewed':
        return `${e.data.key}: ${e.data.decision}${e.data.guidance ? ` (${e.data.guidance})` : ''}`;
      case 'agent.created':
      case 'agent.retired':
      case 'files.applied':
        return null;
    }
  }

  private draw(): void {
    this.frame = (this.frame + 1) % SPINNER.length;
    const columns = (this.out as { columns?: number }).columns;
    const width = columns !== undefined && columns >= 40 ? columns : 100;
    const lines: string[] = [];
    const keyWidth = Math.min(24, Math.max(4, ...[...this.tasks.keys()].map((k) => k.length)));
    for (const t of this.tasks.values()) {
      const mark = t.status === 'in_progress' ? SPINNER[this.frame]! : (MARK[t.status] ?? ' ');
      const agent = t.agentId ?? '';
      const attempt = t.attempt > 0 ? `attempt ${t.attempt}` : '';
      const reason = t.reason && t.status !== 'completed' ? ` ${t.reason}` : '';
      lines.push(clip(`${mark} ${t.key.padEnd(keyWidth)}  ${t.status.padEnd(11)} ${agent.padEnd(12)} ${attempt}${reason}`, width));
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
    let text = this.drawnLines > 0 ? `\x1b[${this.drawnLines}A` : '';
    text += lines.map((l) => `\x1b[2K${l}`).join('\n') + '\n';
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
