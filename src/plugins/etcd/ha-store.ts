import type { ClusterSnapshot, ClusterStore, MemberReport, OpTime, RestoreRequest, StoreCall, StoredReport, SwitchoverRequest, SyncState } from '../../ha/index.js';
import { endpointHost, type Compare, type EtcdClient, type KeyValue, type TxnOp } from './client.js';

/**
 * The election's store in etcd: every key of one service group under one
 * prefix, read in one range, changed by transactions that compare the
 * leader key (value and lease) so a member that lost the key can change
 * nothing a leader owns.
 */
export class EtcdClusterStore implements ClusterStore {
  private readonly k: { leader: string; members: string; optime: string; initialize: string; sync: string; pause: string; switchover: string; restore: string };

  constructor(
    private readonly client: EtcdClient,
    /** e.g. /hasup/<cluster>/postgresql/default/ (a trailing slash is added when missing). */
    readonly prefix: string,
  ) {
    const p = prefix.endsWith('/') ? prefix : `${prefix}/`;
    this.prefix = p;
    this.k = { leader: `${p}leader`, members: `${p}members/`, optime: `${p}optime`, initialize: `${p}initialize`, sync: `${p}sync`, pause: `${p}pause`, switchover: `${p}switchover`, restore: `${p}restore` };
  }

  async snapshot(o: StoreCall = {}): Promise<ClusterSnapshot> {
    const r = await this.client.range(this.prefix, { prefix: true, ...o });
    return this.parse(r.kvs, r.revision);
  }

  async grantLease(ttlS: number, o: StoreCall = {}): Promise<string> {
    return (await this.client.leaseGrant(ttlS, o)).id;
  }

  async renewLease(lease: string, o: StoreCall = {}): Promise<boolean> {
    return (await this.client.leaseKeepAliveOnce(lease, o)) > 0;
  }

  async revokeLease(lease: string, o: StoreCall = {}): Promise<void> {
    await this.client.leaseRevoke(lease, o);
  }

  async publishReport(report: MemberReport, lease: string, o: StoreCall = {}): Promise<void> {
    await this.client.put(this.memberKey(report.member), JSON.stringify(report), { lease, ...o });
  }

  async acquireLeader(member: string, lease: string, o: StoreCall = {}): Promise<boolean> {
    const r = await this.client.txn({ compare: [{ key: this.k.leader, target: 'version', result: 'equal', version: 0 }], success: [{ put: { key: this.k.leader, value: member, lease } }] }, o);
    return r.succeeded;
  }

  async leaderTurn(member: string, lease: string, report: MemberReport, optime: OpTime, o: StoreCall = {}): Promise<{ stillLeader: boolean; snapshot: ClusterSnapshot }> {
    const range: TxnOp = { range: { key: this.prefix, prefix: true } };
    const r = await this.client.txn(
      {
        compare: [
          { key: this.k.leader, target: 'value', result: 'equal', value: member },
          { key: this.k.leader, target: 'lease', result: 'equal', lease },
        ],
        success: [{ put: { key: this.memberKey(member), value: JSON.stringify(report), lease } }, { put: { key: this.k.optime, value: JSON.stringify(optime) } }, range],
        failure: [range],
      },
      o,
    );
    const last = r.responses[r.responses.length - 1];
    const kvs = last && 'range' in last ? last.range.kvs : [];
    return { stillLeader: r.succeeded, snapshot: this.parse(kvs, r.revision) };
  }

  async reclaimLeader(member: string, lease: string, o: StoreCall = {}): Promise<boolean> {
    const r = await this.client.txn({ compare: [{ key: this.k.leader, target: 'value', result: 'equal', value: member }], success: [{ put: { key: this.k.leader, value: member, lease } }] }, o);
    return r.succeeded;
  }

  async releaseLeader(member: string, o: StoreCall = {}): Promise<boolean> {
    const r = await this.client.txn({ compare: [{ key: this.k.leader, target: 'value', result: 'equal', value: member }], success: [{ delete: { key: this.k.leader } }] }, o);
    return r.succeeded;
  }

  async handOver(from: string, fromLease: string, to: string, toLease: string, o: StoreCall = {}): Promise<boolean> {
    const r = await this.client.txn(
      {
        compare: [
          { key: this.k.leader, target: 'value', result: 'equal', value: from },
          { key: this.k.leader, target: 'lease', result: 'equal', lease: fromLease },
        ],
        success: [{ put: { key: this.k.leader, value: to, lease: toLease } }, { delete: { key: this.k.switchover } }],
      },
      o,
    );
    return r.succeeded;
  }

  async claimInitialize(member: string, o: StoreCall = {}): Promise<boolean> {
    const r = await this.client.txn({ compare: [{ key: this.k.initialize, target: 'version', result: 'equal', version: 0 }], success: [{ put: { key: this.k.initialize, value: member } }] }, o);
    return r.succeeded;
  }

  async releaseInitialize(member: string, o: StoreCall = {}): Promise<void> {
    await this.client.txn({ compare: [{ key: this.k.initialize, target: 'value', result: 'equal', value: member }], success: [{ delete: { key: this.k.initialize } }] }, o);
  }

  async setSync(leader: string, members: string[], o: StoreCall = {}): Promise<boolean> {
    const value: SyncState = { leader, members };
    const r = await this.client.txn({ compare: [{ key: this.k.leader, target: 'value', result: 'equal', value: leader }], success: [{ put: { key: this.k.sync, value: JSON.stringify(value) } }] }, o);
    return r.succeeded;
  }

  async setPaused(paused: boolean, by: string, o: StoreCall = {}): Promise<void> {
    if (paused) await this.client.put(this.k.pause, JSON.stringify({ by, at: Date.now() }), o);
    else await this.client.delete(this.k.pause, o);
  }

  async requestSwitchover(req: SwitchoverRequest, o: StoreCall = {}): Promise<boolean> {
    const r = await this.client.txn({ compare: [{ key: this.k.switchover, target: 'version', result: 'equal', version: 0 }], success: [{ put: { key: this.k.switchover, value: JSON.stringify(req) } }] }, o);
    return r.succeeded;
  }

  async failSwitchover(req: SwitchoverRequest, reason: string, o: StoreCall = {}): Promise<void> {
    await this.replaceSwitchover(req.id, [{ put: { key: this.k.switchover, value: JSON.stringify({ ...req, failed: reason }) } }], o);
  }

  async clearSwitchover(id: string | null, o: StoreCall = {}): Promise<void> {
    if (id === null) await this.client.delete(this.k.switchover, o);
    else await this.replaceSwitchover(id, [{ delete: { key: this.k.switchover } }], o);
  }

  async yieldConsensusLeadership(localHost: string, o: StoreCall = {}): Promise<string | null> {
    const members = await this.client.memberList(o);
    const local = members.find((m) => m.clientUrls.some((u) => endpointHost(u) === localHost));
    const endpoint = local?.clientUrls[0];
    if (!local || !endpoint) return null;
    // Fewer than three started voters: losing any node loses the quorum anyway, and a transfer
    // while etcd is still forming restarts the few seconds it waits before admitting the next voter.
    const voters = members.filter((m) => !m.isLearner && m.clientUrls.length > 0);
    if (voters.length < 3) return null;
    const status = await this.client.statusAt(endpoint, o);
    if (status.leader === '' || status.leader !== status.memberId) return null;
    const target = voters.find((m) => m.id !== local.id);
    if (!target) return null;
    await this.client.moveLeader(endpoint, target.id, o);
    return target.name || target.id;
  }

  watch(onChange: (keys: string[]) => void, signal: AbortSignal): void {
    const loop = async () => {
      while (!signal.aborted) {
        let streamed = false;
        try {
          await this.client.watch(this.prefix, { prefix: true, signal }, (events) => onChange(events.map((e) => e.kv.key.slice(this.prefix.length))));
          streamed = true;
        } catch {
          // No endpoint accepted the watch: the loop's own polling covers until one does.
        }
        if (signal.aborted) return;
        // A stream that broke may have missed a change: have the loop look now.
        if (streamed) onChange(['leader']);
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    void loop();
  }

  // ---- internals -------------------------------------------------------------

  private memberKey(member: string): string {
    return `${this.k.members}${member}`;
  }

  /** Applies `ops` only if the pending request still has this id (compared by revision). */
  async requestRestore(req: RestoreRequest, o: StoreCall = {}): Promise<boolean> {
    const current = await this.client.get(this.k.restore, o);
    const prior = current ? parseJson<RestoreRequest>(current.value) : null;
    if (prior && prior.state !== 'done' && prior.state !== 'failed') return false;
    const compare: Compare = current
      ? { key: this.k.restore, target: 'mod', result: 'equal', modRevision: current.modRevision }
      : { key: this.k.restore, target: 'version', result: 'equal', version: 0 };
    const r = await this.client.txn({ compare: [compare], success: [{ put: { key: this.k.restore, value: JSON.stringify(req) } }] }, o);
    return r.succeeded;
  }

  async updateRestore(req: RestoreRequest, o: StoreCall = {}): Promise<void> {
    const current = await this.client.get(this.k.restore, o);
    if (!current || parseJson<RestoreRequest>(current.value)?.id !== req.id) return;
    await this.client.txn({ compare: [{ key: this.k.restore, target: 'mod', result: 'equal', modRevision: current.modRevision }], success: [{ put: { key: this.k.restore, value: JSON.stringify(req) } }] }, o);
  }

  private async replaceSwitchover(id: string, ops: TxnOp[], o: StoreCall): Promise<void> {
    const current = await this.client.get(this.k.switchover, o);
    if (!current || parseJson<SwitchoverRequest>(current.value)?.id !== id) return;
    await this.client.txn({ compare: [{ key: this.k.switchover, target: 'mod', result: 'equal', modRevision: current.modRevision }], success: ops }, o);
  }

  private parse(kvs: KeyValue[], revision: number): ClusterSnapshot {
    const snap: ClusterSnapshot = { revision, leader: null, members: new Map<string, StoredReport>(), optime: null, initialize: null, sync: null, paused: false, switchover: null, restore: null };
    for (const kv of kvs) {
      if (kv.key === this.k.leader) snap.leader = { member: kv.value, lease: kv.lease, modRevision: kv.modRevision };
      else if (kv.key.startsWith(this.k.members)) {
        const report = parseJson<MemberReport>(kv.value);
        if (report && typeof report.member === 'string') snap.members.set(report.member, { report, modRevision: kv.modRevision, lease: kv.lease });
      } else if (kv.key === this.k.optime) snap.optime = parseJson<OpTime>(kv.value);
      else if (kv.key === this.k.initialize) snap.initialize = { member: kv.value };
      else if (kv.key === this.k.sync) snap.sync = parseJson<SyncState>(kv.value);
      else if (kv.key === this.k.pause) snap.paused = true;
      else if (kv.key === this.k.switchover) snap.switchover = parseJson<SwitchoverRequest>(kv.value);
      else if (kv.key === this.k.restore) snap.restore = parseJson<RestoreRequest>(kv.value);
    }
    return snap;
  }
}

function parseJson<T>(text: string): T | null {
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}
