/**
 * The machine catalogue: the statecharts the runtime runs, by name, with the version stored
 * beside their persisted snapshots (`GET /api/machines`), and their definitions as `toJSON()` or
 * Mermaid `stateDiagram-v2` text (`GET /api/machines/:name`).
 */
import type { AnyStateMachine } from 'xstate';
import { toMermaid } from './diagram.ts';
import { LEAD_MACHINE_VERSION, leadMachine } from './lead.ts';
import { WORKER_MACHINE_VERSION, workerMachine } from './worker.ts';

export interface CatalogueEntry {
  name: string;
  version: number;
  machine: AnyStateMachine;
}

export const MACHINES: readonly CatalogueEntry[] = [
  { name: 'lead', version: LEAD_MACHINE_VERSION, machine: leadMachine },
  { name: 'worker', version: WORKER_MACHINE_VERSION, machine: workerMachine },
];

/** Every machine's name and version. */
export function machineVersions(): { name: string; version: number }[] {
  return MACHINES.map(({ name, version }) => ({ name, version }));
}

/** A machine's definition (`undefined`: no machine of that name). */
export function machineDefinition(name: string, format: 'json' | 'mermaid'): unknown {
  const entry = MACHINES.find((m) => m.name === name);
  if (!entry) return undefined;
  return format === 'mermaid' ? toMermaid(entry.machine) : entry.machine.toJSON();
}
