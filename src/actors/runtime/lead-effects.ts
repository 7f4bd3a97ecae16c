/**
 * The lead machine with every effect wired: workers (model, workspace, tests, records), the
 * plan, the preflight and the lead's own `persist`, each writing through the outbox and fenced
 * by the run's lease. Built once per runtime; every hosted run uses it.
 */
import path from 'node:path';
import type Anthropic from '@anthropic-ai/sdk';
import type { Outbox } from '../../events/outbox.ts';
import { leadMachine, type LeadMachine, type PersistInput } from '../../machines/lead.ts';
import { workerMachine } from '../../machines/worker.ts';
import { createKeyedMutex } from '../keyed-mutex.ts';
import { cachedJournal } from '../model/journal.ts';
import { createPlan } from '../model/plan.ts';
import { createPreflight } from '../preflight.ts';
import { createWorkerEffects } from '../worker-effects.ts';
import { createBaselineStore } from './baseline-records.ts';
import { createPersist, type Companion, type RunFence } from './lead-writer.ts';
import { createRecords } from './records.ts';

export interface LeadEffectsOptions {
  outbox: Outbox;
  fence: RunFence;
  client: Anthropic;
  dataDir: string;
  childEnv: Record<string, string>;
  maxTokens?: number | undefined;
  modelTimeoutMs?: number | undefined;
  /** The pending snapshots of the batch's run, written in the batch's transaction (see `LeadHost.takeSnapshots`). */
  snapshotsOf: (input: PersistInput) => Promise<Companion | undefined>;
}

export function createLeadMachine(o: LeadEffectsOptions): LeadMachine {
  const records = createRecords(o.outbox, o.fence);
  const model = { client: o.client, journal: cachedJournal(records), timeoutMs: o.modelTimeoutMs };
  const maxTokens = o.maxTokens ?? 16_000;
  const worktreesRoot = path.join(o.dataDir, 'worktrees');
  const worker = workerMachine.provide({
    actors: createWorkerEffects({
      ...model,
      tasks: records,
      budget: records,
      maxTokens,
      recorder: records,
      worktreesRoot,
      childEnv: o.childEnv,
      sandboxHide: [o.dataDir],
      attemptsRoot: path.join(o.dataDir, 'attempts'),
      lockProject: createKeyedMutex(),
    }),
  });
  return leadMachine.provide({
    actors: {
      worker,
      persist: createPersist(o.outbox, o.snapshotsOf, o.fence),
      plan: createPlan({ ...model, budget: records, plans: records, maxTokens }),
      preflight: createPreflight({
        store: createBaselineStore(o.outbox, o.fence),
        worktreesRoot,
        childEnv: o.childEnv,
        sandboxHide: [o.dataDir],
      }),
    },
  });
}
