/**
 * The effect a machine invokes before the runtime provides the real one (`machine.provide`): typed
 * with its input and output, so the machine's `setup` knows both without a cast, and failing loudly
 * if a machine is ever run without its effects.
 */
import { fromPromise } from 'xstate';

export function placeholder<Output, Input>(machine: string, name: string) {
  return fromPromise<Output, Input>(() => Promise.reject(new Error(`${machine} effect '${name}' was not provided`)));
}
