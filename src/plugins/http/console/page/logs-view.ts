import type { LogLine, LogPage } from '../es-queries.js';
import { get } from './api.js';
import { byId, clock, h, replace, short } from './dom.js';

/**
 * Log search over the shipped logs (GET /ui/logs): text, member, service,
 * level and range, newest first; a live tail that asks every 2 s for what
 * is newer than the newest line shown; and a window around a chosen time
 * (a failover mark). An Elasticsearch error is said in this panel.
 */
const TAIL_MS = 2000;
const MAX_ROWS = 500;

let shown: LogLine[] = [];
let tailTimer: number | undefined;
let around: { from: number; to: number } | null = null;

function params(extra: Record<string, string> = {}): string {
  const q = new URLSearchParams();
  const text = byId<HTMLInputElement>('log-text').value.trim();
  const member = byId<HTMLSelectElement>('log-member').value;
  const service = byId<HTMLSelectElement>('log-service').value;
  const level = byId<HTMLSelectElement>('log-level').value;
  if (text) q.set('text', text);
  if (member) q.set('member', member);
  if (service) q.set('service', service);
  if (level) q.set('level', level);
  if (around) {
    q.set('from', String(around.from));
    q.set('to', String(around.to));
  } else q.set('range', byId<HTMLSelectElement>('log-range').value);
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return q.toString();
}

export async function searchLogs(): Promise<void> {
  const status = byId('log-status');
  status.className = 'muted';
  status.textContent = 'searching…';
  try {
    const page = await get<LogPage>(`/ui/logs?${params({ size: '200' })}`);
    shown = page.lines;
    render();
    const where = around ? ` between ${clock(around.from)} and ${clock(around.to)}` : '';
    status.textContent = `${page.total}${page.total_is_lower_bound ? '+' : ''} matching lines${where}, newest first${page.lines.length < page.total ? ` (showing ${page.lines.length})` : ''}${page.timed_out ? '; Elasticsearch timed out, results are partial' : ''}`;
  } catch (err) {
    shown = [];
    render();
    status.className = 'error';
    status.textContent = (err as Error).message;
  }
}

/** The logs of every member around a moment (a failover mark): one minute before to two after. */
export function logsAround(time: number): void {
  around = { from: time - 60_000, to: time + 120_000 };
  byId<HTMLInputElement>('log-tail').checked = false;
  setTail(false);
  byId('logs').scrollIntoView({ behavior: 'smooth', block: 'center' });
  void searchLogs();
}

async function tail(): Promise<void> {
  const newest = shown[0]?.time;
  try {
    const page = await get<LogPage>(`/ui/logs?${params({ size: '200', ...(newest ? { after: String(newest) } : {}) })}`);
    const known = new Set(shown.map((l) => l.id));
    const fresh = page.lines.filter((l) => !known.has(l.id));
    if (fresh.length > 0) {
      shown = [...fresh, ...shown].slice(0, MAX_ROWS);
      render();
    }
    byId('log-status').className = 'muted';
    byId('log-status').textContent = `live: ${shown.length} lines, newest first, checked ${clock(Date.now())}`;
  } catch (err) {
    byId('log-status').className = 'error';
    byId('log-status').textContent = `live tail: ${(err as Error).message}; retrying`;
  }
}

function setTail(on: boolean): void {
  window.clearInterval(tailTimer);
  tailTimer = on ? window.setInterval(() => void tail(), TAIL_MS) : undefined;
}

function render(): void {
  const head = h('tr', {}, ...['Time', 'Member', 'Service', 'Level', 'Message'].map((t) => h('th', {}, t)));
  const rows = shown.map((l) => h('tr', {}, h('td', { class: 'mono' }, clock(l.time)), h('td', { class: 'mono', title: l.member }, short(l.member)), h('td', {}, l.service), h('td', { class: `lvl-${l.level}` }, l.level), h('td', { class: 'msg' }, l.message)));
  replace(byId('logs'), h('thead', {}, head), h('tbody', {}, ...rows));
}

export function setupLogs(): void {
  byId('log-form').addEventListener('submit', (e) => {
    e.preventDefault();
    around = null;
    void searchLogs();
  });
  byId<HTMLInputElement>('log-tail').addEventListener('change', (e) => {
    const on = (e.target as HTMLInputElement).checked;
    if (on) around = null;
    setTail(on);
    if (on) void searchLogs();
  });
}
