import type { Census } from '../../cluster-view.js';
import { post } from './api.js';
import { byId, setOptions, short } from './dom.js';

/**
 * Operations, shown to the operator only (the API refuses them to a viewer
 * anyway): switchover to a chosen replica, pause and resume of automatic
 * failover, restart of a service on this member. Each asks first, naming
 * what will happen.
 */
export interface OpsState {
  census: Census | null;
  leader: string | null;
  paused: boolean | null;
}

export function confirmAction(title: string, text: string, ok: string): Promise<boolean> {
  const dialog = byId<HTMLDialogElement>('confirm');
  byId('confirm-title').textContent = title;
  byId('confirm-text').textContent = text;
  byId('confirm-ok').textContent = ok;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }));
}

export function setupOps(state: () => OpsState, refresh: () => void): void {
  const result = byId('ops-result');
  const run = async (what: string, action: () => Promise<unknown>, done: (answer: never) => string) => {
    result.textContent = `${what}…`;
    result.className = 'result muted';
    try {
      result.textContent = done((await action()) as never);
      result.className = 'result';
    } catch (err) {
      result.textContent = `${what} failed: ${(err as Error).message}`;
      result.className = 'result error';
    }
    refresh();
  };

  byId('switchover').addEventListener('click', async () => {
    const to = byId<HTMLSelectElement>('switch-to').value;
    const leader = state().leader;
    if (!to) return;
    const ok = await confirmAction('Switch over', `The leader ${leader ? short(leader) : '(unknown)'} stops taking writes, waits until ${short(to)} has all of its WAL, and hands leadership to ${short(to)}. Writes pause for a few seconds; clients reconnect through HAProxy.`, `Switch over to ${short(to)}`);
    if (ok) void run('switchover', () => post('/switchover', { to }, 120_000), (a: { from: string; to: string; took_ms: number }) => `Leadership moved from ${short(a.from)} to ${short(a.to)} in ${a.took_ms} ms.`);
  });
  byId('pause').addEventListener('click', async () => {
    const ok = await confirmAction('Pause automatic failover', 'While paused, no member takes over when the leader dies: the cluster stays without a writable primary until you resume. Use it for maintenance only.', 'Pause failover');
    if (ok) void run('pause', () => post('/pause'), () => 'Automatic failover is paused.');
  });
  byId('resume').addEventListener('click', async () => {
    const ok = await confirmAction('Resume automatic failover', 'A dead leader is replaced again by the most up-to-date healthy replica.', 'Resume failover');
    if (ok) void run('resume', () => post('/resume'), () => 'Automatic failover is on again.');
  });
  byId('restart').addEventListener('click', async () => {
    const svc = byId<HTMLSelectElement>('restart-svc').value;
    if (!svc) return;
    const name = svc.split('.')[0]!;
    const me = state().census?.member_id ?? '';
    const leads = svc.startsWith('postgresql.') && state().leader === me;
    const ok = await confirmAction('Restart a service', `${name} on this member (${short(me)}) is stopped and started again.${leads ? ' This member is the PostgreSQL leader: writes fail until it is back, or until a failover if it does not come back within the TTL.' : ''}`, `Restart ${name}`);
    if (ok) void run(`restart ${name}`, () => post(`/services/${encodeURIComponent(name)}/restart`, undefined, 120_000), () => `${name} restarted on ${short(me)}.`);
  });
}

/** The choices offered: replicas to switch over to, this member's services, the pause state. */
export function updateOps(s: OpsState): void {
  const census = s.census;
  if (!census) return;
  const replicas = census.members.filter((m) => m.state === 'alive' && m.services.some((x) => x.service_group.startsWith('postgresql.') && x.role === 'replica'));
  setOptions(byId<HTMLSelectElement>('switch-to'), replicas.map((m) => ({ value: m.id, label: `${short(m.id)} (${m.address.split(':')[0]})` })));
  byId<HTMLButtonElement>('switchover').disabled = replicas.length === 0;
  const self = census.members.find((m) => m.self);
  setOptions(byId<HTMLSelectElement>('restart-svc'), (self?.services ?? []).map((x) => ({ value: x.service_group, label: x.service_group })));
  byId('pause-state').textContent = s.paused === null ? 'Failover: no HA election here' : s.paused ? 'Failover is PAUSED' : 'Automatic failover is on';
  byId<HTMLButtonElement>('pause').disabled = s.paused !== false;
  byId<HTMLButtonElement>('resume').disabled = s.paused !== true;
}
