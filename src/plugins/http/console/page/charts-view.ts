import type uPlotType from 'uplot';
import type { ChartData, ChartMark } from '../es-queries.js';
import { ApiError, get } from './api.js';
import { byId, bytes, clock, h, replace, short } from './dom.js';

/**
 * The charts of the shipped metrics (GET /ui/charts, one date histogram per
 * chart, every member's series or one member's), drawn with uPlot (served
 * from the package, loaded when the charts are first drawn). Failovers and
 * services failing (GET /ui/marks) are vertical lines on every time axis.
 * An Elasticsearch error shows in the chart's own panel; the rest of the
 * page goes on.
 */
const CHART_NAMES = ['cpu', 'memory', 'disk', 'disk_io', 'network', 'pg_tps', 'pg_connections', 'pg_lag', 'es_heap', 'es_indexing'] as const;
const COLORS = ['#2251c6', '#d9480f', '#2b8a3e', '#862e9c', '#c2255c', '#0b7285', '#5c940d', '#e67700'];
const MARK_COLORS = { failover: '#b42318', restart: '#a15c00' };

type UPlotCtor = typeof uPlotType;
let uPlotModule: Promise<UPlotCtor> | undefined;

function loadUPlot(): Promise<UPlotCtor> {
  // A path in a variable: the module is uPlot's own ESM build, served beside this one.
  const path = './uplot.js';
  uPlotModule ??= (import(path) as Promise<{ default: UPlotCtor }>).then((m) => m.default);
  return uPlotModule;
}

const plots = new Map<string, uPlotType>();
let generation = 0;

export async function drawCharts(range: string, member: string, onMark: (time: number) => void): Promise<void> {
  const mine = ++generation;
  const container = byId('charts');
  const panels = new Map(CHART_NAMES.map((name) => [name, h('div', { class: 'chart', 'data-chart': name }, h('h3', {}, name), h('p', { class: 'muted' }, 'loading…'))]));
  for (const p of plots.values()) p.destroy();
  plots.clear();
  replace(container, ...panels.values());
  const q = `range=${encodeURIComponent(range)}${member ? `&member=${member}` : ''}`;
  const marksP = get<{ marks: ChartMark[] }>(`/ui/marks?${q}`).then((a) => a.marks, () => [] as ChartMark[]);
  const UPlot = await loadUPlot();
  const marks = await marksP;
  if (mine !== generation) return;
  renderMarks(marks, onMark);
  await Promise.all(
    CHART_NAMES.map(async (name) => {
      const panel = panels.get(name)!;
      try {
        const data = await get<ChartData>(`/ui/charts?name=${name}&${q}`);
        if (mine !== generation) return;
        draw(UPlot, panel, data, marks);
      } catch (err) {
        if (mine !== generation) return;
        const why = err instanceof ApiError && (err.status === 503 || err.status === 502) ? (err as Error).message : `cannot load: ${(err as Error).message}`;
        replace(panel, h('h3', {}, name), h('p', { class: 'error' }, why));
      }
    }),
  );
}

function draw(UPlot: UPlotCtor, panel: HTMLElement, data: ChartData, marks: ChartMark[]): void {
  const title = h('h3', {}, `${data.title}${data.unit ? ` (${data.unit})` : ''}`);
  if (data.series.length === 0 || data.series.every((s) => s.values.every((v) => v === null))) {
    replace(panel, title, h('p', { class: 'muted' }, 'no data in this range'));
    return;
  }
  replace(panel, title);
  // The unit is in the title: axis values carry only what makes them readable (KiB, %).
  const format = (v: number | null) => (v === null ? '–' : data.unit === 'B' || data.unit === 'B/s' ? bytes(v) : `${Math.round(v * 10) / 10}${data.unit === '%' ? ' %' : ''}`);
  const opts: uPlotType.Options = {
    width: Math.max(260, panel.clientWidth - 16),
    height: 180,
    legend: { show: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    axes: [{}, { size: 76, values: (_u, splits) => splits.map((v) => format(v)) }],
    series: [{}, ...data.series.map((s, i) => ({ label: short(s.member), stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false, value: (_u: uPlotType, v: number | null) => format(v) }))],
    hooks: { draw: [(u: uPlotType) => drawMarks(u, marks)] },
  };
  const rows: uPlotType.AlignedData = [data.times.map((t) => t / 1000), ...data.series.map((s) => s.values)];
  plots.set(data.name, new UPlot(opts, rows, panel));
}

function drawMarks(u: uPlotType, marks: ChartMark[]): void {
  const ctx = u.ctx;
  ctx.save();
  ctx.lineWidth = 2;
  for (const m of marks) {
    const x = u.valToPos(m.time / 1000, 'x', true);
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
    ctx.strokeStyle = MARK_COLORS[m.kind];
    ctx.beginPath();
    ctx.moveTo(x, u.bbox.top);
    ctx.lineTo(x, u.bbox.top + u.bbox.height);
    ctx.stroke();
  }
  ctx.restore();
}

/** The marks as a list under the charts, newest first, each a way to the logs around it. */
function renderMarks(marks: ChartMark[], onMark: (time: number) => void): void {
  const items = [...marks].reverse().slice(0, 20).map((m) => {
    const go = h('button', { type: 'button', class: 'link' }, 'logs around it');
    go.addEventListener('click', () => onMark(m.time));
    return h('li', {}, h('span', { class: `mark-${m.kind}` }, '▮ '), `${clock(m.time)} ${m.kind === 'failover' ? 'leadership change' : 'service failed'} on ${short(m.member)}: ${m.text} `, go);
  });
  replace(byId('marks'), items.length > 0 ? h('ul', {}, ...items) : null);
}

/** Charts follow the width of their panels. */
export function resizeCharts(): void {
  for (const p of plots.values()) {
    const panel = p.root.parentElement;
    if (panel) p.setSize({ width: Math.max(260, panel.clientWidth - 16), height: 180 });
  }
}
