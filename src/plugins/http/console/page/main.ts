import type { Census } from '../../cluster-view.js';
import type { HaStatus } from '../../ha-status.js';
import type { EtcdMembershipStatus } from '../../../etcd/membership.js';
import { ApiError, get, post, useSession, type SessionInfo } from './api.js';
import { drawCharts, resizeCharts } from './charts-view.js';
import { byId, setOptions, short } from './dom.js';
import { LiveStream, type LiveEvent, type LiveState } from './live.js';
import { logsAround, searchLogs, setupLogs } from './logs-view.js';
import { renderMembers } from './members-view.js';
import { setupOps, updateOps, type OpsState } from './ops-view.js';
import { renderHaStatus } from './status-view.js';

/**
 * The console's page: log in, then show the HA status, the members and
 * (for the operator) the operations, kept current by the event stream
 * (an ha-status event redraws the indicator at once; other events re-read
 * the views) and re-read every 5 s for what has no event (replica lag);
 * charts and logs load on demand.
 */
const REFRESH_MS = 5000;

const state: { status: HaStatus | null; census: Census | null; etcd: EtcdMembershipStatus | null; leader: string | null; paused: boolean | null; role: SessionInfo['role'] | null } = {
  status: null,
  census: null,
  etcd: null,
  leader: null,
  paused: null,
  role: null,
};

let live: LiveStream | undefined;
let refreshTimer: number | undefined;
let pending: number | undefined;

async function boot(): Promise<void> {
  try {
    start(await get<SessionInfo>('/ui/session'));
  } catch (err) {
    showLogin(err instanceof ApiError && err.status === 401 ? '' : (err as Error).message);
  }
}

function showLogin(message: string): void {
  live?.stop();
  window.clearInterval(refreshTimer);
  byId('console').hidden = true;
  byId('logout').hidden = true;
  byId('conn').hidden = true;
  byId('who').textContent = '';
  byId('login').hidden = false;
  byId('login-error').textContent = message;
  byId<HTMLInputElement>('token').focus();
}

function start(session: SessionInfo): void {
  useSession(session, () => showLogin('Your session has ended; log in again.'));
  state.role = session.role;
  byId('login').hidden = true;
  byId('console').hidden = false;
  byId('logout').hidden = false;
  byId('who').textContent = session.role === 'operator' ? 'operator' : 'viewer (read only)';
  byId('where').textContent = `member ${short(session.member_id)} · ${location.host}`;
  byId('ops').hidden = session.role !== 'operator';
  live = new LiveStream(onEvent, showConnection, () => void refresh());
  live.start();
  window.clearInterval(refreshTimer);
  refreshTimer = window.setInterval(() => void refresh(), REFRESH_MS);
  void redrawCharts();
  void searchLogs();
}

async function refresh(): Promise<void> {
  const [status, census, etcd, ha] = await Promise.all([
    get<HaStatus>('/ha-status').catch(noteError),
    get<Census>('/census').catch(noteError),
    get<EtcdMembershipStatus>('/etcd').catch(() => null),
    get<{ leader: string | null; paused: boolean }>('/ha').catch(() => null),
  ]);
  if (status) {
    state.status = status;
    renderHaStatus(status);
  }
  if (census) {
    state.census = census;
    byId('members-error').textContent = '';
  }
  state.etcd = etcd;
  state.leader = ha?.leader ?? census?.service_groups.find((g) => g.service_group.startsWith('postgresql.'))?.leader ?? null;
  state.paused = ha ? ha.paused : null;
  if (state.census) {
    renderMembers(state.census, state.etcd, state.status);
    const members = state.census.members.filter((m) => m.state !== 'departed').map((m) => ({ value: m.id, label: `${short(m.id)} (${m.address.split(':')[0]})` }));
    setOptions(byId<HTMLSelectElement>('chart-member'), members, 1);
    setOptions(byId<HTMLSelectElement>('log-member'), members, 1);
  }
  if (state.role === 'operator') updateOps(opsState());
}

function noteError(err: unknown): null {
  byId('members-error').textContent = `cannot read the cluster: ${(err as Error).message}`;
  return null;
}

const opsState = (): OpsState => ({ census: state.census, leader: state.leader, paused: state.paused });

function onEvent(e: LiveEvent): void {
  if (e.type === 'ha-status') {
    const { type: _type, time: _time, ...status } = e;
    state.status = status as unknown as HaStatus;
    renderHaStatus(state.status);
    if (state.census) renderMembers(state.census, state.etcd, state.status);
    return;
  }
  if (e.type === 'hello') return;
  // Several events often come together (a member's services and role): one re-read for all.
  window.clearTimeout(pending);
  pending = window.setTimeout(() => void refresh(), 200);
}

function showConnection(s: LiveState): void {
  const el = byId('conn');
  el.hidden = false;
  if (s.state === 'live') {
    el.className = 'conn live';
    el.textContent = 'live';
  } else if (s.state === 'connecting') {
    el.className = 'conn';
    el.textContent = 'connecting…';
  } else {
    el.className = 'conn lost';
    el.textContent = `connection lost; retrying in ${Math.round(s.retryInMs / 1000)} s`;
  }
}

function redrawCharts(): Promise<void> {
  return drawCharts(byId<HTMLSelectElement>('chart-range').value, byId<HTMLSelectElement>('chart-member').value, logsAround).catch((err: unknown) => {
    byId('charts-error').textContent = `charts: ${(err as Error).message}`;
  });
}

byId('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = byId<HTMLInputElement>('token');
  try {
    const session = await post<SessionInfo>('/ui/login', { token: input.value });
    input.value = '';
    byId('login-error').textContent = '';
    start(session);
  } catch (err) {
    byId('login-error').textContent = (err as Error).message;
  }
});
byId('logout').addEventListener('click', async () => {
  await post('/ui/logout').catch(() => undefined);
  showLogin('Logged out.');
});
byId('chart-range').addEventListener('change', () => void redrawCharts());
byId('chart-member').addEventListener('change', () => void redrawCharts());
byId('chart-refresh').addEventListener('click', () => void redrawCharts());
window.addEventListener('resize', () => resizeCharts());
setupOps(opsState, () => void refresh());
setupLogs();
void boot();
