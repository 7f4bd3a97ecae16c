/**
 * Where a control request runs: here, or — when another live process executes the project's
 * run — in that process, carried through Postgres by the control relay (`control-relay.ts`),
 * whose answer is returned or thrown as the local operation would have. An owner that died is
 * replaced first: its run is adopted here, then the request runs here.
 */
import type { Db } from '../../db/client.ts';
import { latestRuns } from '../../db/runs.ts';
import { coerceError, TroupeError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { RunStatus } from '../../machines/types.ts';
import { OWNER_GONE, errorOfAnswer, type ControlAnswer, type ControlRequest } from './control-relay.ts';
import { ACTIVE, type RunHosting } from './run-hosting.ts';

/** Control requests carried to the owner of the run, by their name in `control_requests.action`. */
export type ControlAction = 'start' | 'pause' | 'resume' | 'cancel' | 'retry' | 'cancel_task' | 'approve' | 'reject' | 'patch';

export interface ControlRoutingOptions {
  db: Db;
  hosting: RunHosting;
  logger: Logger;
  /** Carries a request to `owner` and waits for its answer (`ControlRelay.send`). */
  send(owner: string, request: ControlRequest): Promise<ControlAnswer | typeof OWNER_GONE>;
}

export class ControlRouting {
  constructor(private readonly o: ControlRoutingOptions) {}

  /** Runs `here`, or carries the request to the process that executes the project's run. */
  async routed<T>(projectId: string, action: ControlAction, args: Record<string, unknown>, here: () => Promise<T>): Promise<T> {
    const { hosting } = this.o;
    for (let tries = 0; ; tries++) {
      const run = (await latestRuns(this.o.db, [projectId])).get(projectId);
      const owner = run && tries < 3 ? await hosting.remoteOwner(run) : null;
      if (!owner) {
        if (run && ACTIVE.has(run.status as RunStatus) && !hosting.hosting(run.id) && hosting.isAccepting) {
          await hosting.adopt(run).catch((e: unknown) => this.o.logger.warn({ err: coerceError(e), runId: run.id }, 'cannot adopt the run'));
        }
        return here();
      }
      const answer = await this.o.send(owner, { projectId, runId: run!.id, action, args });
      if (answer === OWNER_GONE) continue;
      return answerOf<T>(action, answer);
    }
  }
}

/** A carried request's answer from the local operation: its result, or the error it threw as an error envelope. */
export async function answered(status: number, work: () => Promise<unknown>): Promise<ControlAnswer> {
  try {
    return { status, body: await work() };
  } catch (e) {
    if (e instanceof TroupeError) return { status: e.status, body: { error: { code: e.code, message: e.message, ...(e.details === undefined ? {} : { details: e.details }) } } };
    throw e;
  }
}

/** What the owner answered to a carried request, as the local method would return or throw it. */
function answerOf<T>(action: ControlAction, answer: ControlAnswer): T {
  if (answer.status >= 400) throw errorOfAnswer(answer);
  const body = answer.body as { run?: unknown };
  return (action === 'start' || action === 'pause' || action === 'resume' || action === 'cancel' ? body.run : body) as T;
}
