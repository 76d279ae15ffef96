import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatPeerAddress, parsePeerAddress, type MemberView, type PeerAddress } from '../gossip/index.js';

/**
 * The ring's other members, remembered in STATE_DIR/known-peers.json so a
 * restarted hasup rejoins through them at once (Serf's snapshot does the
 * same). Without it a member with no configured peers (the founder) waited
 * for the others to probe it again: 7 s in the rolling test, during which
 * its census held no other member, and a rollout asked of it refused with
 * "PostgreSQL has no leader". Departed members are dropped from the file;
 * dead and left ones stay (they may come back).
 */
const FILE = 'known-peers.json';

export function readKnownPeers(stateDir: string): PeerAddress[] {
  try {
    const data = JSON.parse(readFileSync(join(stateDir, FILE), 'utf8')) as { peers?: unknown };
    if (!Array.isArray(data.peers)) return [];
    return data.peers.flatMap((p) => {
      try {
        return typeof p === 'string' ? [parsePeerAddress(p)] : [];
      } catch {
        return [];
      }
    });
  } catch {
    return [];
  }
}

/** The addresses to remember: every other member that has not been departed. */
export function peersToRemember(selfId: string, members: MemberView[]): string[] {
  return members
    .filter((m) => m.id !== selfId && m.state !== 'departed')
    .map((m) => formatPeerAddress({ addr: m.addr, port: m.port }))
    .sort();
}

/** Writes the list when it changed (atomically: a crash mid-write leaves the previous one). */
export function writeKnownPeers(stateDir: string, peers: string[], last: string | undefined): string {
  const text = `${JSON.stringify({ peers }, null, 2)}\n`;
  if (text === last) return text;
  const file = join(stateDir, FILE);
  writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  return text;
}

/** Configured peers first, then remembered ones not among them. */
export function joinCandidates(configured: PeerAddress[], remembered: PeerAddress[]): PeerAddress[] {
  const seen = new Set(configured.map(formatPeerAddress));
  return [...configured, ...remembered.filter((p) => !seen.has(formatPeerAddress(p)))];
}
