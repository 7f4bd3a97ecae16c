/**
 * The lines `troupe run` and `troupe demo` print after a run: each task with why it did not
 * complete and where its work is, the run's tokens and cost, the workspace, and the commits this
 * run made there (never older history).
 */
import { execFileSync } from 'node:child_process';
import type { TaskJson } from '../actors/runtime/views.ts';
import { taskBranch } from '../actors/workspace/task-tree.ts';
import { oneLine, reasonText } from './progress.ts';

export interface SummaryInput {
  runStatus: string;
  summary: string;
  workspace: string;
  isolation: 'worktree' | 'shared';
  /** The workspace's HEAD before the run started (null: no commit yet, or not a git repository). */
  headBefore: string | null;
  tasks: TaskJson[];
  totals: { inputTokens: number; outputTokens: number; costUsd: number | null };
}

const MAX_COMMITS = 50;

export function formatRunSummary(r: SummaryInput): string {
  const lines = [``, `Run ${r.runStatus}: ${r.summary}`, ``];
  const width = Math.max(4, ...r.tasks.map((t) => t.key.length));
  const indent = ' '.repeat(width + 4);
  const git = isGitRepo(r.workspace);
  for (const t of r.tasks) {
    lines.push(`  ${t.key.padEnd(width)}  ${t.status}  ${t.agentType}  ${t.attempts} attempt(s)${t.commit ? `  ${t.commit.slice(0, 10)}` : ''}`);
    const why = reasonText(t.reason, t.blockedReason);
    if (why && (t.status !== 'completed' || t.verified === false)) lines.push(`${indent}why: ${oneLine(why, 600)}`);
    if (t.status === 'blocked' || t.status === 'failed') {
      const where = workOf(t, r, git);
      if (where) lines.push(`${indent}work: ${where}`);
    }
  }
  const cost = r.totals.costUsd === null ? 'cost unknown (unpriced model)' : `$${r.totals.costUsd.toFixed(4)}`;
  lines.push(``, `Tokens: ${r.totals.inputTokens} in, ${r.totals.outputTokens} out; ${cost}`, `Workspace: ${r.workspace}`);
  if (git) {
    const commits = runCommits(r.workspace, r.headBefore);
    if (commits.length === 0) lines.push(`Commits: none`);
    else {
      lines.push(`Commits (this run):`, ...commits.slice(0, MAX_COMMITS).map((l) => `  ${l}`));
      if (commits.length > MAX_COMMITS) lines.push(`  … and ${commits.length - MAX_COMMITS} more (git -C ${r.workspace} log ${r.headBefore ? `${r.headBefore.slice(0, 12)}..HEAD` : ''})`.trimEnd());
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Where a task that did not complete left its work, or null when it never started. */
function workOf(t: TaskJson, r: SummaryInput, git: boolean): string | null {
  if (r.isolation === 'shared') {
    if (t.attempts === 0) return null;
    return `its files are in the workspace as the last attempt left them${git ? ` (git -C ${r.workspace} status)` : ` (${r.workspace})`}`;
  }
  const branch = taskBranch(t.key);
  if (!git || gitOut(r.workspace, ['rev-parse', '-q', '--verify', `refs/heads/${branch}^{commit}`]) === null) {
    return t.attempts === 0 ? null : `no branch ${branch} was kept`;
  }
  const ahead = Number(gitOut(r.workspace, ['rev-list', '--count', `HEAD..refs/heads/${branch}`]) ?? '0');
  if (ahead === 0) return `branch ${branch} holds no commit beyond the workspace's HEAD (the last attempt's files were not kept)`;
  return `kept on branch ${branch} (${ahead} commit(s) not merged): git -C ${r.workspace} log ${branch}`;
}

/** The workspace's HEAD commit, or null (no commit yet, not a git repository). */
export function gitHead(dir: string): string | null {
  return gitOut(dir, ['rev-parse', '-q', '--verify', 'HEAD^{commit}']);
}

/** `git log --oneline <before>..HEAD` of the workspace; every commit when there was none before. */
function runCommits(dir: string, before: string | null): string[] {
  if (gitHead(dir) === null) return [];
  const out = gitOut(dir, ['log', '--oneline', '--no-decorate', before ? `${before}..HEAD` : 'HEAD']);
  return out ? out.split('\n') : [];
}

function isGitRepo(dir: string): boolean {
  return gitOut(dir, ['rev-parse', '--git-dir']) !== null;
}

function gitOut(dir: string, args: string[]): string | null {
  try {
    return execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}
