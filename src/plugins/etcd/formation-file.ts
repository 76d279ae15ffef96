import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * SVC_ROOT/membership.json (SVC_ROOT = STATE_DIR/svc/etcd): this member's
 * place in etcd as decided once by the formation (membership.ts), read by
 * the driver when it renders etcd.yml. Remembered so a restarted member
 * neither asks again nor changes its mind: a voter restarts its etcd from
 * its data dir, a client stays a client.
 */
export interface EtcdVoterDecision {
  role: 'voter';
  /** 'new' on the founding member; 'existing' on a member added to the running cluster. */
  state: 'new' | 'existing';
  /** etcd's --initial-cluster-token. */
  token: string;
  /** Every member of the etcd cluster at the moment this one was added (itself included): --initial-cluster. */
  members: Array<{ name: string; peer_urls: string[] }>;
  decided_at: number;
}

export interface EtcdClientDecision {
  role: 'client';
  decided_at: number;
}

export type EtcdDecision = EtcdVoterDecision | EtcdClientDecision;

export const DECISION_FILE = 'membership.json';

export function readDecision(serviceRoot: string): EtcdDecision | undefined {
  const file = join(serviceRoot, DECISION_FILE);
  if (!existsSync(file)) return undefined;
  let data: Partial<EtcdVoterDecision> | Partial<EtcdClientDecision>;
  try {
    data = JSON.parse(readFileSync(file, 'utf8')) as typeof data;
  } catch {
    throw new Error(`${file} is not valid JSON; restore it, or remove it to let this member decide its etcd role again`);
  }
  if (data.role === 'client') return { role: 'client', decided_at: Number(data.decided_at ?? 0) };
  const v = data as Partial<EtcdVoterDecision>;
  if (v.role !== 'voter' || (v.state !== 'new' && v.state !== 'existing') || typeof v.token !== 'string' || !Array.isArray(v.members) || v.members.length === 0) {
    throw new Error(`${file} does not describe an etcd role; restore it, or remove it to let this member decide its etcd role again`);
  }
  return { role: 'voter', state: v.state, token: v.token, members: v.members, decided_at: Number(v.decided_at ?? 0) };
}

export function writeDecision(serviceRoot: string, decision: EtcdDecision): void {
  mkdirSync(serviceRoot, { recursive: true, mode: 0o750 });
  const file = join(serviceRoot, DECISION_FILE);
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(decision, null, 2)}\n`, { mode: 0o640 });
  renameSync(tmp, file);
}
