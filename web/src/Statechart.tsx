/**
 * An actor's statechart as SVG: the machine's definition (`GET /api/machines/:name`, read once per
 * machine) turned into an ELK graph by `machineGraph` and laid out once per machine by elkjs, then
 * drawn with every compound state a box around its children, a parallel state's regions dashed,
 * every transition an arrow with its label, and the states the given snapshot value is in
 * highlighted (`activeStates`): the innermost ones filled, their ancestors outlined. A chart is
 * drawn at full size and scrolled to its current state, or fitted to the page's width on request.
 */
import type { ElkNode } from 'elkjs/lib/elk-api';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { errorText, getJson } from './api.ts';
import { loadElk } from './elk.ts';
import { activeStates, machineGraph, type StateBox, type StateDef } from './machine-graph.ts';

type Point = { x: number; y: number };

interface Box {
  state: StateBox;
  x: number;
  y: number;
  w: number;
  h: number;
  leaf: boolean;
}

interface Chart {
  def: StateDef;
  width: number;
  height: number;
  /** Parents before their children, so children are drawn on top. */
  boxes: Box[];
  edges: { id: string; points: Point[]; label: { text: string; x: number; y: number } | null }[];
}

const charts = new Map<string, Promise<Chart>>();

/** The laid-out chart of a machine; the definition and the layout are read once per page. */
export function chartOf(machine: string): Promise<Chart> {
  let c = charts.get(machine);
  if (!c) {
    c = getJson<StateDef>(`/api/machines/${encodeURIComponent(machine)}`).then(layout);
    c.catch(() => charts.delete(machine));
    charts.set(machine, c);
  }
  return c;
}

async function layout(def: StateDef): Promise<Chart> {
  const graph = machineGraph(def);
  // Absolute coordinates for shapes and edges alike: no offsets to add up while drawing.
  graph.elk.layoutOptions = { ...graph.elk.layoutOptions, 'elk.json.edgeCoords': 'ROOT', 'elk.json.shapeCoords': 'ROOT' };
  const out = await (await loadElk()).layout(graph.elk);
  const boxes: Box[] = [];
  const visit = (n: ElkNode) => {
    const state = graph.states.get(n.id);
    if (state) boxes.push({ state, x: n.x ?? 0, y: n.y ?? 0, w: n.width ?? 0, h: n.height ?? 0, leaf: !n.children?.length });
    for (const child of n.children ?? []) visit(child);
  };
  visit(out);
  const edges = (out.edges ?? []).map((e) => {
    const sec = (e as { sections?: { startPoint: Point; endPoint: Point; bendPoints?: Point[] }[] }).sections?.[0];
    const l = (e as { labels?: { text?: string; x?: number; y?: number }[] }).labels?.[0];
    return { id: e.id, points: sec ? [sec.startPoint, ...(sec.bendPoints ?? []), sec.endPoint] : [], label: l?.text ? { text: l.text, x: l.x ?? 0, y: l.y ?? 0 } : null };
  });
  return { def, width: out.width ?? 0, height: out.height ?? 0, boxes, edges };
}

export function Statechart({ machine, value, label }: { machine: string; value: unknown; label: string }) {
  const [chart, setChart] = useState<Chart | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [fit, setFit] = useState(false);
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    let current = true;
    chartOf(machine).then(
      (c) => current && setChart(c),
      (e: unknown) => current && setError(`the ${machine} machine could not be drawn: ${errorText(e)}`),
    );
    return () => {
      current = false;
    };
  }, [machine]);

  const active = !chart || value === undefined ? new Set<string>() : activeStates(chart.def, value);
  const currentIds = chart ? chart.boxes.filter((b) => b.state.parent !== null && isCurrent(chart, active, b)).map((b) => b.state.id) : [];
  const currentKey = currentIds.join(',');
  // Bring the state the actor is in into view (the first one, for parallel states).
  useLayoutEffect(() => {
    const el = box.current;
    const b = chart?.boxes.find((x) => x.state.id === currentIds[0]);
    if (!el || !b || fit) return;
    el.scrollLeft = Math.max(0, b.x + b.w / 2 - el.clientWidth / 2);
    el.scrollTop = Math.max(0, b.y + b.h / 2 - el.clientHeight / 2);
  }, [chart, currentKey, fit]);

  if (error) return <p class="error">{error}</p>;
  if (!chart) return <p class="muted">Laying out the {machine} machine…</p>;
  const pad = 8;
  const current = new Set(currentIds);
  const markerId = `sc-arrow-${machine}`;
  return (
    <div class="chart-wrap">
      <button type="button" class="link chart-fit" onClick={() => setFit((f) => !f)}>
        {fit ? 'full size' : 'fit to width'}
      </button>
      <div class={`chart${fit ? ' fit' : ''}`} ref={box}>
        <svg width={fit ? '100%' : chart.width + 2 * pad} height={fit ? undefined : chart.height + 2 * pad} viewBox={`${-pad} ${-pad} ${chart.width + 2 * pad} ${chart.height + 2 * pad}`} role="img" aria-label={label}>
          <defs>
            <marker id={markerId} viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
              <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" />
            </marker>
          </defs>
          {chart.boxes.map((b) => {
            const cls = ['sc-state', `sc-${b.state.kind}`, b.state.region ? 'sc-region' : '', b.state.parent === null ? 'sc-root' : '', active.has(b.state.id) ? 'active' : '', current.has(b.state.id) ? 'current' : ''].filter(Boolean).join(' ');
            return (
              <g key={b.state.id} class={cls} data-state={b.state.id} transform={`translate(${b.x},${b.y})`}>
                <rect width={b.w} height={b.h} rx={b.leaf ? 8 : 4} />
                <text x="10" y={b.leaf ? 20 : 17} class="sc-label">
                  {b.state.label}
                  {b.state.kind === 'final' ? ' ◉' : ''}
                </text>
                {b.state.invokes.map((s, i) => (
                  <text key={s} x="10" y={(b.leaf ? 20 : 17) + 16 * (i + 1)} class="sc-invoke">
                    invokes {s}
                  </text>
                ))}
              </g>
            );
          })}
          {chart.edges.map((e) => (
            <g key={e.id} class="sc-edge">
              <polyline points={e.points.map((p) => `${p.x},${p.y}`).join(' ')} marker-end={`url(#${markerId})`} />
              {e.label && (
                <text x={e.label.x} y={e.label.y + 12} class="sc-edge-label">
                  {e.label.text}
                </text>
              )}
            </g>
          ))}
        </svg>
      </div>
    </div>
  );
}

/** One of the innermost states the actor is in: active, and no child of it active. */
function isCurrent(chart: Chart, active: ReadonlySet<string>, b: Box): boolean {
  return active.has(b.state.id) && (b.leaf || !chart.boxes.some((c) => c.state.parent === b.state.id && active.has(c.state.id)));
}
