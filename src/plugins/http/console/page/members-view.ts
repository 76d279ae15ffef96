import type { Census, CensusMember, CensusService } from '../../cluster-view.js';
import type { HaStatus } from '../../ha-status.js';
import type { EtcdMembershipStatus } from '../../../etcd/membership.js';
import { ago, byId, bytes, clock, h, replace, short } from './dom.js';

/**
 * The members table (the inventory): one row per member with its gossip
 * state and when it was last seen, its PostgreSQL role, timeline, lag and
 * sync role, its etcd and Elasticsearch roles, and every service's state,
 * pid, time in state and health. Built from /census and /etcd; "last seen"
 * of a member that is not alive is when the HA status saw it go.
 */
export function renderMembers(census: Census, etcd: EtcdMembershipStatus | null, status: HaStatus | null, now = Date.now()): void {
  const head = h('tr', {}, ...COLUMNS.map((t) => h('th', t === 'Services' ? { title: 'each service: version, state, pid, time in state, health' } : {}, t)));
  const rows = census.members.filter((m) => m.state !== 'departed').map((m) => row(m, census, etcd, status, now));
  replace(byId('members'), h('thead', {}, head), h('tbody', {}, ...rows));
}

const COLUMNS = ['Member', 'Address', 'Gossip', 'Last seen', 'PostgreSQL', 'Timeline', 'Lag', 'Sync', 'etcd', 'Elasticsearch', 'Services'];

function row(m: CensusMember, census: Census, etcd: EtcdMembershipStatus | null, status: HaStatus | null, now: number): HTMLTableRowElement {
  const pg = m.services.find((s) => s.service_group.startsWith('postgresql.'));
  const es = m.services.find((s) => s.service_group.startsWith('elasticsearch.'));
  const gone = status?.reasons.find((r) => r.member === m.id && r.code.startsWith('member_'));
  const lastSeen = m.state === 'alive' ? 'now' : gone ? `${clock(gone.since, now)} (${ago(now - gone.since)} ago)` : '–';
  const leader = census.service_groups.find((g) => g.service_group === pg?.service_group)?.leader === m.id;
  // A member that is not alive speaks through its last rumors: shown, but as what was last known.
  const stale = m.state !== 'alive';
  const cells: (Node | string | number)[][] = [
    [h('span', { class: 'mono', title: m.id }, short(m.id)), m.self ? h('span', { class: 'muted' }, ' (this)') : '', h('span', { class: 'svc muted' }, `hasup ${m.hasup_version ?? '?'}`)],
    // The gossip port is the same on every member: the address alone reads faster.
    [h('span', { class: 'mono', title: m.address }, m.address.replace(/:\d+$/, ''))],
    [pill(m.state, m.state === 'alive' ? 'good' : m.state === 'suspect' || m.state === 'left' ? 'warn' : 'bad')],
    [lastSeen],
    [pg ? pgRole(pg, leader) : '–'],
    [pg?.timeline ?? '–'],
    [pg?.role === 'replica' ? `${bytes(pg.lag_bytes)} · ${pg.lag_seconds ?? '?'} s` : '–'],
    [pg?.sync_role ?? '–'],
    [etcdRole(m.id, etcd)],
    [es ? pill(`node ${es.state}`, es.state === 'running' && es.health === 'ok' ? 'good' : es.health === 'critical' ? 'bad' : 'warn') : '–'],
    [...m.services.map((s) => service(s, now)), stale && m.services.length > 0 ? h('span', { class: 'muted svc' }, 'as last reported') : ''],
  ];
  return h('tr', { 'data-member': m.id, class: stale ? 'stale' : undefined }, ...cells.map((c, i) => h('td', { 'data-label': COLUMNS[i]! }, ...c)));
}

function pgRole(s: CensusService, leader: boolean): Node {
  if (s.role === 'leader') return pill(leader ? 'leader' : 'leader?', s.lease_in_doubt ? 'bad' : 'good');
  if (s.role === 'replica') return pill(`replica${s.replication_state ? `, ${s.replication_state}` : ''}`, s.replication_state === 'streaming' ? 'good' : 'warn');
  return pill(s.role ?? s.state, 'warn');
}

function etcdRole(member: string, etcd: EtcdMembershipStatus | null): Node | string {
  if (!etcd || !etcd.forming) return '–';
  const voter = etcd.voters.find((v) => v.member === member);
  return voter ? pill(voter.healthy ? 'voter' : 'voter, unhealthy', voter.healthy ? 'good' : 'bad') : 'client';
}

function service(s: CensusService, now: number): HTMLElement {
  const health = s.health === 'ok' ? 'good' : s.health === 'critical' ? 'bad' : 'warn';
  const since = s.since ? ` · ${ago(now - s.since).replace(/ (h|min|s|d)\b/g, '$1')}` : '';
  const name = s.service_group.replace(/\.default$/, '');
  return h('span', { class: 'svc', 'data-service': s.service_group, title: `${s.service_group} ${s.version ?? ''}: ${s.state}, pid ${s.pid ?? '–'}, in this state for${since.slice(2) ? ` ${since.slice(3)}` : ' ?'}, health ${s.health}` }, h('b', {}, name), s.version ? h('span', { class: 'muted' }, ` ${s.version}`) : '', ` ${s.state}${s.pid ? ` ${s.pid}` : ''}${since} `, pill(s.health, health));
}

function pill(text: string, kind: 'good' | 'bad' | 'warn'): HTMLElement {
  return h('span', { class: `pill ${kind}` }, text);
}
