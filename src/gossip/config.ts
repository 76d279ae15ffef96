/**
 * Timing and fan-out of the gossip ring. All durations are milliseconds.
 *
 * The LAN profile is tuned (with the simulation in bench/gossip.ts) for fast
 * failure detection on a data-centre network while keeping the steady-state
 * cost of a member around 250 bytes per second: one tiny probe per interval,
 * no gossip when there is nothing to say, and a push-pull every half minute.
 */
export interface GossipConfig {
  /** SWIM protocol period: one member is probed per interval (scaled by local health). */
  probeIntervalMs: number;
  /** How long to wait for a direct ack before asking others to probe (scaled by local health). */
  probeTimeoutMs: number;
  /** Members asked to probe indirectly (ping-req) when a direct probe fails. */
  indirectChecks: number;
  /** Suspicion lasts at least suspicionMult * max(1, log10(n)) probe intervals. */
  suspicionMult: number;
  /** Without confirmations a suspicion lasts this many times the minimum (Lifeguard). */
  suspicionMaxTimeoutMult: number;
  /** Local health multiplier cap (Lifeguard): intervals and timeouts stretch up to this factor. */
  awarenessMaxMultiplier: number;
  /** Gossip round period, only while there is something to send. */
  gossipIntervalMs: number;
  /** Members each gossip round sends to. */
  gossipNodes: number;
  /** How long a dead member still receives gossip, so a falsely-dead one hears it and refutes. */
  gossipToTheDeadMs: number;
  /** Each rumor is sent retransmitMult * ceil(log10(n + 1)) times by every member. */
  retransmitMult: number;
  /** Full-state push-pull with a random member (scaled up for rings above 32 members). */
  pushPullIntervalMs: number;
  /**
   * Period of attempts to push-pull with dead members (each member tries with
   * probability dead/alive, so the ring tries each dead member about once per
   * period). Heals partitions: the far side learns it was declared dead and refutes.
   */
  reconnectIntervalMs: number;
  /** Timeout of a stream (push-pull) request. */
  streamTimeoutMs: number;
  /** Dead and left members stay in the table (and are retried) this long, then are forgotten. */
  deadReclaimMs: number;
  /** Departed members are kept as tombstones this long so they cannot come back. */
  departedReclaimMs: number;
  /** Default bound on how long leave() waits for its LEFT rumor to go out. */
  leaveTimeoutMs: number;
}

export type GossipProfile = 'lan' | 'wan' | 'local';

const HOUR_MS = 3600_000;

const lan: GossipConfig = {
  probeIntervalMs: 500,
  probeTimeoutMs: 200,
  indirectChecks: 4,
  suspicionMult: 3,
  suspicionMaxTimeoutMult: 5,
  awarenessMaxMultiplier: 8,
  gossipIntervalMs: 50,
  gossipNodes: 3,
  gossipToTheDeadMs: 15_000,
  retransmitMult: 4,
  pushPullIntervalMs: 30_000,
  reconnectIntervalMs: 10_000,
  streamTimeoutMs: 5_000,
  deadReclaimMs: 24 * HOUR_MS,
  departedReclaimMs: 7 * 24 * HOUR_MS,
  leaveTimeoutMs: 3_000,
};

/** Higher latency and loss between sites: memberlist's WAN timings. */
const wan: GossipConfig = {
  ...lan,
  probeIntervalMs: 5_000,
  probeTimeoutMs: 3_000,
  suspicionMult: 6,
  suspicionMaxTimeoutMult: 6,
  gossipIntervalMs: 500,
  gossipNodes: 4,
  gossipToTheDeadMs: 60_000,
  pushPullIntervalMs: 60_000,
  reconnectIntervalMs: 30_000,
  streamTimeoutMs: 30_000,
  leaveTimeoutMs: 10_000,
};

/** One host (development, loopback tests): everything faster. */
const local: GossipConfig = {
  ...lan,
  probeIntervalMs: 250,
  probeTimeoutMs: 100,
  gossipIntervalMs: 25,
  gossipToTheDeadMs: 10_000,
  pushPullIntervalMs: 15_000,
  reconnectIntervalMs: 5_000,
  streamTimeoutMs: 2_000,
  leaveTimeoutMs: 2_000,
};

export const GOSSIP_PROFILES: Readonly<Record<GossipProfile, Readonly<GossipConfig>>> = Object.freeze({
  lan: Object.freeze(lan),
  wan: Object.freeze(wan),
  local: Object.freeze(local),
});

/** Settings that count things (members, multipliers) rather than time; must be integers. */
const INTEGER_KEYS: ReadonlySet<keyof GossipConfig> = new Set<keyof GossipConfig>([
  'indirectChecks',
  'suspicionMult',
  'suspicionMaxTimeoutMult',
  'awarenessMaxMultiplier',
  'gossipNodes',
  'retransmitMult',
]);

/** Settings where 0 is meaningful (0 turns the mechanism off). */
const ZERO_ALLOWED: ReadonlySet<keyof GossipConfig> = new Set<keyof GossipConfig>(['indirectChecks', 'gossipToTheDeadMs']);

/**
 * A profile's config with the operator's overrides applied. Every override is
 * checked: an unknown name, a wrong type or an impossible value is an Error
 * that names the setting, so a typo never silently runs with defaults.
 */
export function resolveGossipConfig(profile: GossipProfile = 'lan', overrides: Record<string, unknown> = {}): GossipConfig {
  if (!Object.hasOwn(GOSSIP_PROFILES, profile)) {
    throw new Error(`unknown gossip profile "${String(profile)}" (expected one of ${Object.keys(GOSSIP_PROFILES).join(', ')})`);
  }
  const config: GossipConfig = { ...GOSSIP_PROFILES[profile] };
  for (const [key, value] of Object.entries(overrides)) {
    if (!Object.hasOwn(config, key)) {
      throw new Error(`unknown gossip setting "${key}" (known: ${Object.keys(config).join(', ')})`);
    }
    const name = key as keyof GossipConfig;
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new Error(`gossip setting "${key}" must be a finite number, got ${describe(value)}`);
    }
    if (INTEGER_KEYS.has(name) && !Number.isInteger(value)) {
      throw new Error(`gossip setting "${key}" must be an integer, got ${value}`);
    }
    if (value < 0 || (value === 0 && !ZERO_ALLOWED.has(name))) {
      throw new Error(`gossip setting "${key}" must be ${ZERO_ALLOWED.has(name) ? '>= 0' : '> 0'}, got ${value}`);
    }
    config[name] = value;
  }
  if (config.probeTimeoutMs >= config.probeIntervalMs) {
    throw new Error(`gossip setting "probeTimeoutMs" (${config.probeTimeoutMs}) must be less than probeIntervalMs (${config.probeIntervalMs})`);
  }
  if (config.suspicionMaxTimeoutMult < 1) {
    throw new Error(`gossip setting "suspicionMaxTimeoutMult" must be >= 1, got ${config.suspicionMaxTimeoutMult}`);
  }
  return config;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `the string "${value}"`;
  if (typeof value === 'number') return String(value);
  return value === null ? 'null' : typeof value;
}
