/**
 * The gossip library: SWIM membership with Lifeguard, rumor dissemination,
 * push-pull sync, ring encryption with a rotating keyring, and transports
 * (UDP+TCP for real members, an in-memory network for simulations). It
 * imports nothing of hasup; hasup imports it only through this file (the
 * simulator under sim/ is for tests and benchmarks).
 */
export { bracketHost, formatHostPort, formatPeerAddress, parsePeerAddress } from './address.js';
export { realClock, type Clock, type Random, type Timer } from './clock.js';
export { WireCodec } from './codec.js';
export { GOSSIP_PROFILES, resolveGossipConfig, type GossipProfile } from './config.js';
export { Keyring, RING_KEY_BYTES } from './keyring.js';
export { addRingKey, generateRingKeyFile, loadKeyring, removeRingKey, ringKeyFingerprint, useRingKey } from './keyring-file.js';
export type { MemberStateName } from './member-state.js';
export { Memberlist, type MemberlistEvents, type MemberlistStats, type MemberView } from './memberlist.js';
export type { StoredRumor } from './rumor-store.js';
export type { PeerAddress } from './transport.js';
export { createUdpTransport, type UdpTransport } from './udp-transport.js';
