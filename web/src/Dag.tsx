/**
 * The task DAG: elkjs lays the tasks out in layers (an edge from each dependency to its dependent),
 * and an SVG draws them, each node with its key, status colour, agent, attempt and, while the task
 * is in flight, a spinner. The layout runs again only when the graph's shape changes, never for a
 * status change. elkjs (the larger part of the bundle) loads with the first graph.
 */
import type { ElkNode } from 'elkjs/lib/elk-api';
import { useEffect, useState } from 'preact/hooks';
import { loadElk } from './elk.ts';
import type { Task } from './types.ts';
import { statusWords } from './words.ts';

const NODE_W = 190;
const NODE_H = 68;

interface Layout {
  width: number;
  height: number;
  nodes: Map<string, { x: number; y: number }>;
  edges: { id: string; points: { x: number; y: number }[] }[];
}


/** The graph's shape: keys and edges, in a stable order. */
function shapeOf(tasks: Task[]): string {
  const keys = new Set(tasks.map((t) => t.key));
  return JSON.stringify(tasks.map((t) => [t.key, t.dependsOn.filter((d) => keys.has(d))]).sort());
}

async function layout(shape: string): Promise<Layout> {
  const entries = JSON.parse(shape) as [string, string[]][];
  const graph: ElkNode = {
    id: 'root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'RIGHT',
      'elk.spacing.nodeNode': '24',
      'elk.layered.spacing.nodeNodeBetweenLayers': '56',
      'elk.edgeRouting': 'ORTHOGONAL',
    },
    children: entries.map(([key]) => ({ id: key, width: NODE_W, height: NODE_H })),
    edges: entries.flatMap(([key, deps]) => deps.map((d) => ({ id: `${d}->${key}`, sources: [d], targets: [key] }))),
  };
  const out = await (await loadElk()).layout(graph);
  return {
    width: out.width ?? 0,
    height: out.height ?? 0,
    nodes: new Map((out.children ?? []).map((n) => [n.id, { x: n.x ?? 0, y: n.y ?? 0 }])),
    edges: (out.edges ?? []).map((e) => {
      const sec = (e as { sections?: { startPoint: Point; endPoint: Point; bendPoints?: Point[] }[] }).sections?.[0];
      return { id: e.id, points: sec ? [sec.startPoint, ...(sec.bendPoints ?? []), sec.endPoint] : [] };
    }),
  };
}
type Point = { x: number; y: number };

export function Dag(props: { tasks: Task[]; agentStates: Record<string, string>; selected: string | null; hrefOf: (key: string) => string }) {
  const shape = shapeOf(props.tasks);
  const [laid, setLaid] = useState<{ shape: string; layout: Layout } | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let current = true;
    layout(shape).then(
      (l) => current && setLaid({ shape, layout: l }),
      (e: unknown) => current && setError(`the graph could not be laid out: ${String(e)}`),
    );
    return () => {
      current = false;
    };
  }, [shape]);

  if (error) return <p class="error">{error}</p>;
  if (!laid) return <p class="muted">Laying out {props.tasks.length} tasks…</p>;
  const { layout: l } = laid;
  const pad = 12;
  return (
    <div class="dag">
      <svg width={l.width + 2 * pad} height={l.height + 2 * pad} viewBox={`${-pad} ${-pad} ${l.width + 2 * pad} ${l.height + 2 * pad}`} role="img" aria-label="task graph">
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" />
          </marker>
        </defs>
        {l.edges.map((e) => (
          <polyline key={e.id} class="edge" points={e.points.map((p) => `${p.x},${p.y}`).join(' ')} marker-end="url(#arrow)" />
        ))}
        {props.tasks.map((t) => {
          const at = l.nodes.get(t.key);
          return at ? <Node key={t.key} task={t} x={at.x} y={at.y} agentState={t.agentId ? props.agentStates[t.agentId] : undefined} selected={props.selected === t.key} href={props.hrefOf(t.key)} /> : null;
        })}
      </svg>
    </div>
  );
}

function Node(p: { task: Task; x: number; y: number; agentState: string | undefined; selected: boolean; href: string }) {
  const t = p.task;
  const inFlight = t.status === 'in_progress';
  const agent = t.agentId ? `${t.agentId}${inFlight && p.agentState ? ` · ${p.agentState}` : ''}` : t.agentType;
  return (
    <a href={p.href} class={`node status-${t.status}${p.selected ? ' selected' : ''}`} data-task={t.key} data-status={t.status} aria-label={`${t.key}: ${statusWords(t.status)}`}>
      <g transform={`translate(${p.x},${p.y})`}>
        <title>{t.title}</title>
        <rect width={NODE_W} height={NODE_H} rx="6" />
        <text x="10" y="20" class="node-key">
          {t.key.length > 22 ? `${t.key.slice(0, 21)}…` : t.key}
        </text>
        <text x="10" y="38" class="node-status">
          {statusWords(t.status)}
          {t.attempts > 0 ? ` · attempt ${t.attempts}` : ''}
        </text>
        <text x="10" y="56" class="node-agent">
          {agent}
        </text>
        {inFlight && (
          <g transform={`translate(${NODE_W - 18},18)`} class="spinner" aria-label="in flight">
            <circle r="7" />
          </g>
        )}
      </g>
    </a>
  );
}
