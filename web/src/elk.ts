/**
 * The one elkjs instance the page lays its graphs out with (the task DAG, the statecharts). elkjs
 * is the larger part of the bundle, so it loads with the first graph, never with the page.
 */
import type { ElkNode } from 'elkjs/lib/elk-api';

export type Elk = { layout(graph: ElkNode): Promise<ElkNode> };

let elk: Promise<Elk> | undefined;

export const loadElk = (): Promise<Elk> => (elk ??= import('elkjs/lib/elk.bundled.js').then((m) => new m.default()));
