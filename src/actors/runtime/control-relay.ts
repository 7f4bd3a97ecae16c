/**
 * Control requests carried to the process that owns a run, through Postgres: the caller inserts
 * a `control_requests` row addressed to the owner and NOTIFYs; the owner (listening) takes it,
 * runs it through the same code as a request it received itself, and writes the answer (the
 * HTTP status and body the route answers with) and NOTIFYs back; the caller waits a bounded time
 * and answers the same. NOTIFY is only a latency hint: both sides also poll the table, so a lost
 * notification (a reconnect) costs a little time, never the request.
 *
 * A request not answered in time is marked answered (503) by the caller in a guarded update, so
 * an owner that comes back late never acts on it; one the owner already took is waited for a
 * little longer (control operations never wait for agent work, so it is quick).
 */
import { randomBytes } from 'node:crypto';
import type { Store } from '../../db/client.ts';
import {
  answerControlRequest,
  controlRequestById,
  insertControlRequest,
  sweepControlRequests,
  takeControlRequest,
  withdrawControlRequest,
} from '../../db/control-requests.ts';
import { z } from 'zod';
import { coerceError, TroupeError, type ErrorCode } from '../../errors.ts';
import type { Logger } from '../../logger.ts';

export const CONTROL_CHANNEL = 'troupe_control';

/** The HTTP status and JSON body a control route answers with. */
export interface ControlAnswer {
  status: number;
  body: unknown;
}

export interface ControlRequest {
  projectId: string;
  runId: string;
  action: string;
  args: Record<string, unknown>;
}

export interface ControlRelayOptions {
  store: Store;
  /** This runtime's owner id: requests addressed to it are executed here. */
  owner: string;
  logger: Logger;
  /** Runs a request as if it had been received here (never forwards it again). */
  execute(request: ControlRequest): Promise<ControlAnswer>;
  /** Is `owner` gone (its liveness lock missing past the grace period)? Checked while waiting. */
  isDead(owner: string): Promise<boolean>;
  /** Longest wait for the owner's answer (default 10 s). */
  timeoutMs?: number;
  /** Poll period, the fallback for a lost NOTIFY (default 200 ms). */
  pollMs?: number;
}

/** The owner died while the request waited: nobody acted on it; adopt the run and do it here. */
export const OWNER_GONE = Symbol('owner gone');

export class ControlRelay {
  private unlisten: (() => Promise<void>) | null = null;
  private serving: Promise<void> | null = null;
  private serveAgain = false;
  private stopped = false;
  private readonly waiters = new Map<string, () => void>();
  private lastSweep = 0;

  constructor(private readonly o: ControlRelayOptions) {}

  private get db() {
    return this.o.store.db;
  }

  private get timeoutMs() {
    return this.o.timeoutMs ?? 10_000;
  }

  async start(): Promise<void> {
    if (this.o.store.kind !== 'postgres') return;
    this.unlisten = await this.o.store.listen(
      CONTROL_CHANNEL,
      (payload) => {
        const [kind, id] = payload.split(' ', 2);
        if (kind === 'req' && id === this.o.owner) this.serve();
        else if (kind === 'ans' && id) this.waiters.get(id)?.();
      },
      // After every (re)connect: whatever was sent meanwhile.
      () => this.serve(),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const unlisten = this.unlisten;
    this.unlisten = null;
    if (unlisten) await unlisten().catch((e: unknown) => this.o.logger.warn({ err: coerceError(e) }, 'control unlisten failed'));
    for (const wake of this.waiters.values()) wake();
    await this.serving;
  }

  /** Executes every pending request addressed to this owner, oldest first (coalesced; never throws). */
  serve(): void {
    if (this.stopped) return;
    if (this.serving) {
      this.serveAgain = true;
      return;
    }
    this.serving = this.serveLoop().finally(() => {
      this.serving = null;
    });
  }

  private async serveLoop(): Promise<void> {
    do {
      this.serveAgain = false;
      try {
        // One at a time, oldest first, each taken just before it is executed: a slow one does not
        // hold the others taken-but-unanswered (their callers may still withdraw them).
        for (;;) {
          if (this.stopped) break;
          const row = await takeControlRequest(this.db, this.o.owner);
          if (!row) break;
          const answer = await this.answerOf({ projectId: row.projectId, runId: row.runId, action: row.action, args: row.args });
          await answerControlRequest(this.db, CONTROL_CHANNEL, row.id, answer);
        }
        await this.sweep();
      } catch (e) {
        // The next tick or notification tries again; a taken request not answered is answered 503 by its caller.
        this.o.logger.warn({ err: coerceError(e) }, 'cannot serve control requests');
      }
    } while (this.serveAgain && !this.stopped);
  }

  private async answerOf(request: ControlRequest): Promise<ControlAnswer> {
    try {
      return await this.o.execute(request);
    } catch (e) {
      this.o.logger.error({ err: coerceError(e), action: request.action, projectId: request.projectId }, 'forwarded control request failed');
      return { status: 500, body: { error: { code: 'internal', message: 'internal error' } } };
    }
  }

  /**
   * Answered requests are kept an hour (to look at), then removed; so is any request older than
   * an hour (taken by an owner that died, or left by a caller that died before giving up).
   */
  private async sweep(): Promise<void> {
    if (Date.now() - this.lastSweep < 60_000) return;
    this.lastSweep = Date.now();
    await sweepControlRequests(this.db);
  }

  /**
   * Sends `request` to `owner` and waits for its answer. `OWNER_GONE` when the owner died
   * before taking it (nobody acted on it). After the timeout: a 503 answer.
   */
  async send(owner: string, request: ControlRequest): Promise<ControlAnswer | typeof OWNER_GONE> {
    const id = `ctl_${randomBytes(12).toString('hex')}`;
    await insertControlRequest(this.db, CONTROL_CHANNEL, { id, owner, ...request });
    const deadline = Date.now() + this.timeoutMs;
    let takenDeadline: number | null = null;
    try {
      for (;;) {
        const row = await controlRequestById(this.db, id);
        if (!row) return { status: 404, body: { error: { code: 'not_found', message: 'project not found' } } };
        if (row.status === 'answered') return { status: row.answerStatus ?? 500, body: row.answer };
        if (row.status === 'pending' && (await this.o.isDead(owner))) {
          if (await this.giveUp(id, 'the owner of the run died before taking the request')) return OWNER_GONE;
          continue;
        }
        const now = Date.now();
        if (row.status === 'pending' && now >= deadline) {
          const message = `the process that executes this run (${owner}) did not answer within ${Math.round(this.timeoutMs / 1000)} s: try again`;
          if (await this.giveUp(id, message)) return unavailable(message);
          continue;
        }
        if (row.status === 'taken') {
          takenDeadline ??= Math.max(deadline, now) + this.timeoutMs / 2;
          if (now >= takenDeadline) return unavailable(`the process that executes this run (${owner}) took the request but did not answer in time: look at the run before trying again`);
        }
        if (this.stopped) return unavailable('the service is shutting down');
        await this.nap(id);
      }
    } finally {
      this.waiters.delete(id);
    }
  }

  /** Marks a request nobody took as answered (503), so no late owner acts on it. */
  private async giveUp(id: string, message: string): Promise<boolean> {
    const body = { error: { code: 'owner_unavailable', message } };
    return withdrawControlRequest(this.db, id, { status: 503, body });
  }

  private nap(id: string): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.o.pollMs ?? 200);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.waiters.set(id, done);
    });
  }
}

function unavailable(message: string): ControlAnswer {
  return { status: 503, body: { error: { code: 'owner_unavailable', message } } };
}

/**
 * The run's owner did not answer a carried control request in time (503 `owner_unavailable`).
 * Not one of the domain's `ErrorCode`s: it exists only where a request crosses processes.
 */
export class OwnerUnavailable extends TroupeError {
  constructor(message: string) {
    super('owner_unavailable', message);
  }
}

const errorEnvelope = z.object({ error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }) });

/** The error an answer stands for, as the owner threw it (same code, message, details and status). */
export function errorOfAnswer(answer: ControlAnswer): TroupeError {
  const parsed = errorEnvelope.safeParse(answer.body);
  if (!parsed.success) return new TroupeError('internal', 'internal error');
  const { code, message, details } = parsed.data.error;
  if (code === 'owner_unavailable') return new OwnerUnavailable(message);
  const error = new TroupeError(code as ErrorCode, message, details);
  // A code this version does not know (an owner of another version): its status still holds.
  if (typeof error.status !== 'number') return Object.assign(new TroupeError('internal', message, details), { status: answer.status });
  return error;
}
