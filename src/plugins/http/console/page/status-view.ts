import type { HaStatus } from '../../ha-status.js';
import { ago, byId, clock, h, replace, short } from './dom.js';

/**
 * The HA indicator, first on the page: OK or DEGRADED (red when a reason is
 * critical), and every reason with its member and since when, exactly as
 * GET /ha-status (and `hasup status`) gives them.
 */
export function renderHaStatus(s: HaStatus, now = Date.now()): void {
  const el = byId('ha');
  const critical = s.reasons.some((r) => r.severity === 'critical');
  el.className = `ha ${s.status === 'OK' ? 'ok' : critical ? 'critical' : 'degraded'}`;
  const count = s.reasons.length;
  const head = h(
    'div',
    { class: 'ha-head' },
    h('span', { class: 'ha-word', 'data-status': s.status }, s.status),
    h('span', { class: 'muted' }, s.status === 'OK' ? 'every member, replica and service is where it should be' : `${count} reason${count === 1 ? '' : 's'}`),
    h('span', { class: 'since' }, `as seen by ${short(s.member_id)} at ${clock(s.as_of, now)}`),
  );
  const list = h(
    'ul',
    { class: 'reasons' },
    ...s.reasons.map((r) =>
      h('li', { 'data-code': r.code, ...(r.member ? { 'data-member': r.member } : {}) }, h('span', { class: `sev ${r.severity}` }, r.severity), h('span', {}, r.text), h('span', { class: 'since', title: new Date(r.since).toISOString() }, `since ${clock(r.since, now)} (${ago(now - r.since)})`)),
    ),
  );
  replace(el, head, count > 0 ? list : null);
}
