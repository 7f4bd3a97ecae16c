/**
 * How a model answer is kept in `model_calls.response` (jsonb). Postgres refuses U+0000 and
 * lone UTF-16 surrogates in jsonb, and a model may answer with either: refusing to store such
 * an answer would lose a paid call (and the next attempt would pay again). So an answer that
 * holds one is stored as its own JSON text, in which `JSON.stringify` has already written them
 * as the escapes `\u0000` and `\ud800` (plain characters to Postgres); reading parses it back,
 * exactly. Every other answer is stored as itself, readable in SQL as before.
 */
import type Anthropic from '@anthropic-ai/sdk';
import { hasUnstorableStrings } from '../../safe-text.ts';

/** Marks an answer stored as JSON text. No Messages API answer has this key. */
const ENCODED = 'troupe:json';

export function encodeAnswer(message: Anthropic.Message): Record<string, unknown> {
  if (!hasUnstorableStrings(message)) return message as unknown as Record<string, unknown>;
  return { [ENCODED]: JSON.stringify(message) };
}

export function decodeAnswer(stored: unknown): Anthropic.Message {
  const text = typeof stored === 'object' && stored !== null ? (stored as Record<string, unknown>)[ENCODED] : undefined;
  if (typeof text === 'string') return JSON.parse(text) as Anthropic.Message;
  return stored as Anthropic.Message;
}
