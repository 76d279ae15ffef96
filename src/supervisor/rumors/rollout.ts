import { jsonObjectPayload, memberServiceKey } from './key.js';

/**
 * The rollout rumor: progress of a `hasup rolling-restart` or `hasup
 * upgrade` run from this member (key MEMBER/rollout: one slot per member,
 * its latest rollout). The command posts each line it prints to its member
 * (POST /rollouts/progress), which gossips it; every member's /events turns
 * it into a `rollout` event, so the console of any member shows it.
 */
export const RUMOR_ROLLOUT = 'rollout';

export interface RolloutProgress {
  /** One rollout: the command makes it at its start. */
  id: string;
  command: 'rolling-restart' | 'upgrade';
  service_group: string;
  /** hasup upgrade's --to; null for a restart. */
  to: string | null;
  /** The line as the command printed it. */
  line: string;
  state: 'running' | 'done' | 'failed';
  /** ms since the epoch, on the commanding member. */
  at: number;
}

const STATES: ReadonlySet<string> = new Set(['running', 'done', 'failed']);
const COMMANDS: ReadonlySet<string> = new Set(['rolling-restart', 'upgrade']);
/** A line longer than this is cut: the rumor must fit a gossip packet. */
export const ROLLOUT_LINE_MAX = 600;

export function rolloutRumorFor(memberId: string, p: RolloutProgress, version: number): { kind: string; key: string; version: number; payload: Uint8Array } {
  return { kind: RUMOR_ROLLOUT, key: memberServiceKey(memberId, 'rollout'), version, payload: Buffer.from(JSON.stringify({ ...p, line: p.line.slice(0, ROLLOUT_LINE_MAX) })) };
}

/** A peer's progress, or undefined when malformed. Never throws. */
export function decodeRolloutProgress(payload: Uint8Array): RolloutProgress | undefined {
  const d = jsonObjectPayload(payload);
  if (!d) return undefined;
  const { id, command, service_group, to, line, state, at } = d;
  if (typeof id !== 'string' || typeof command !== 'string' || !COMMANDS.has(command) || typeof service_group !== 'string') return undefined;
  if ((to !== null && typeof to !== 'string') || typeof line !== 'string' || typeof state !== 'string' || !STATES.has(state) || typeof at !== 'number') return undefined;
  return { id, command: command as RolloutProgress['command'], service_group, to, line, state: state as RolloutProgress['state'], at };
}
