/**
 * Pay once: every model answer is recorded (request hash, response, usage, cost) before anything
 * acts on it, under a logical key (`gen:<task>:<epoch>:<attempt>`, `plan:<run>`). A restored
 * actor that asks again finds the recorded answer and Claude is not called a second time.
 */
import { createHash } from 'node:crypto';
import type Anthropic from '@anthropic-ai/sdk';
import { isAbortError } from '../../errors.ts';
import type { ModelPurpose } from '../../events/types.ts';
import { modelFault } from './faults.ts';
import { costOf, type TokenUsage } from './prices.ts';

/** Which call: where it belongs and its pay-once key. */
export interface CallIdentity {
  projectId: string;
  runId: string | null;
  taskId: string | null;
  agentId: string | null;
  callKey: string;
  purpose: ModelPurpose;
}

export interface ModelCallRecord extends CallIdentity {
  model: string;
  requestHash: string;
  response: Anthropic.Message;
  usage: TokenUsage;
  costUsd: number | null;
  durationMs: number;
}

/** Where answers are kept. Implemented over the database by the runtime. */
export interface ModelJournal {
  /** The answer recorded for `callKey`, exactly as the API gave it (NUL and all), or null. */
  find(projectId: string, callKey: string): Promise<Anthropic.Message | null>;
  /**
   * Stores the call (answer, usage, cost) and its `llm.usage` event in one transaction, whatever
   * the answer contains, and returns the answer that stands for `callKey`: this one, or the one
   * a racing call recorded first. A call that lost the race is billed all the same (its usage
   * counts toward totals and the budget); the caller acts on the returned answer only.
   */
  record(call: ModelCallRecord): Promise<Anthropic.Message>;
}

/**
 * Remembers the last answers recorded or found, so the step right after a generation (applying
 * its files) does not read back from the database what was just written there. Bounded.
 */
export function cachedJournal(journal: ModelJournal, size = 256): ModelJournal {
  const cache = new Map<string, Anthropic.Message>();
  const keep = (key: string, message: Anthropic.Message) => {
    cache.delete(key);
    cache.set(key, message);
    if (cache.size > size) cache.delete(cache.keys().next().value!);
  };
  return {
    async find(projectId, callKey) {
      const key = `${projectId}:${callKey}`;
      const hit = cache.get(key);
      if (hit) return hit;
      const found = await journal.find(projectId, callKey);
      if (found) keep(key, found);
      return found;
    },
    async record(call) {
      const standing = await journal.record(call);
      keep(`${call.projectId}:${call.callKey}`, standing);
      return standing;
    },
  };
}

export interface CallOnceRequest extends CallIdentity {
  params: Anthropic.MessageCreateParamsNonStreaming;
  signal: AbortSignal;
}

export interface ModelDeps {
  client: Anthropic;
  journal: ModelJournal;
  /** Per-call timeout (the SDK retries within it). */
  timeoutMs?: number;
  now?: () => number;
}

export function requestHash(params: Anthropic.MessageCreateParamsNonStreaming): string {
  return createHash('sha256').update(JSON.stringify(params)).digest('hex');
}

export function usageOf(message: Anthropic.Message): TokenUsage {
  const u = message.usage;
  return {
    inputTokens: u.input_tokens ?? 0,
    outputTokens: u.output_tokens ?? 0,
    cacheReadTokens: u.cache_read_input_tokens ?? 0,
    cacheWriteTokens: u.cache_creation_input_tokens ?? 0,
  };
}

/** The recorded answer for `callKey`, or a new (paid) one, recorded before it is returned. */
export async function callOnce(deps: ModelDeps, req: CallOnceRequest): Promise<{ message: Anthropic.Message; replayed: boolean }> {
  const recorded = await deps.journal.find(req.projectId, req.callKey);
  if (recorded) return { message: recorded, replayed: true };
  return { message: await callAndRecord(deps, req), replayed: false };
}

/**
 * Calls the model (the SDK retries 429/5xx itself) and records the answer before returning it.
 * Returns the recorded answer: when another call for the same key was recorded first, that
 * one, never an answer nobody recorded.
 */
export async function callAndRecord(deps: ModelDeps, req: CallOnceRequest): Promise<Anthropic.Message> {
  const now = deps.now ?? Date.now;
  const started = now();
  let message: Anthropic.Message;
  try {
    message = await deps.client.messages.create(req.params, deps.timeoutMs === undefined ? { signal: req.signal } : { signal: req.signal, timeout: deps.timeoutMs });
  } catch (e) {
    if (req.signal.aborted || isAbortError(e)) throw e;
    throw modelFault(e);
  }
  const usage = usageOf(message);
  return deps.journal.record({
    projectId: req.projectId,
    runId: req.runId,
    taskId: req.taskId,
    agentId: req.agentId,
    callKey: req.callKey,
    purpose: req.purpose,
    model: req.params.model,
    requestHash: requestHash(req.params),
    response: message,
    usage,
    costUsd: costOf(req.params.model, usage),
    durationMs: Math.max(0, Math.round(now() - started)),
  });
}
