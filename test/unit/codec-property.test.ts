import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import protobuf from 'protobufjs/minimal.js';
import { Packet, WireCodec, emptyDropCounters, type DecodeResult, type DropCounters, type DropReason, type PacketInit } from '../../src/gossip/codec.js';
import { ENVELOPE_OVERHEAD, ENVELOPE_VERSION, seal } from '../../src/gossip/envelope.js';
import { Keyring } from '../../src/gossip/keyring.js';
import { MAX_DATAGRAM_BYTES, MAX_STREAM_FRAME_BYTES } from '../../src/gossip/transport.js';

/**
 * Wire-format hardening: whatever arrives, decode must not throw, must give a
 * drop reason that matches what is wrong with the bytes, must count it, and
 * nothing but an authentic, well-formed packet may reach the member table.
 * About 110,000 decodes in all.
 */

const RUNS = {
  randomBytes: 30_000,
  mutatedSealed: 30_000,
  sealedGarbage: 25_000,
  semanticallyInvalid: 15_000,
  validRoundTrip: 10_000,
};

const key = Keyring.generateKey();
const keyring = new Keyring(key);
const sealPlaintext = (plaintext: Uint8Array): Buffer => seal(keyring, plaintext);

/** What the envelope layer must answer for bytes that are not an authentic packet. */
function envelopeReason(data: Uint8Array, maxBytes: number): DropReason {
  if (data.length > maxBytes) return 'oversized';
  if (data.length < ENVELOPE_OVERHEAD) return 'truncated';
  if (data[0] !== ENVELOPE_VERSION) return 'bad_version';
  return 'auth_failed';
}

type AnyMember = { id?: string | null; addr?: string | null; port?: number | null; incarnation?: unknown; state?: number | null; meta?: Uint8Array | null };
type AnyRumor = { kind?: string | null; key?: string | null; version?: unknown; originId?: string | null };

/**
 * The test's own statement of a legitimate packet, written from the design
 * rather than from validatePacket. `uint64` accepts what protobufjs hands out
 * for a uint64 (number or Long) when it fits a JS number exactly.
 */
function legitimate(p: Packet, uint64: (v: unknown) => boolean): boolean {
  const idOk = (s: string | null | undefined, required: boolean): boolean => (s ?? '').length <= 64 && (!required || (s ?? '').length > 0);
  const portOk = (n: number | null | undefined): boolean => typeof n === 'number' && n >= 1 && n <= 65535;
  const memberOk = (m: AnyMember | null | undefined): boolean =>
    !!m &&
    idOk(m.id, true) &&
    (m.addr ?? '').length >= 1 &&
    (m.addr ?? '').length <= 64 &&
    portOk(m.port) &&
    uint64(m.incarnation) &&
    [0, 1, 2, 3, 4].includes(m.state ?? 0) &&
    (m.meta?.length ?? 0) <= 512;
  const rumorOk = (r: AnyRumor): boolean =>
    (r.kind ?? '').length >= 1 && (r.kind ?? '').length <= 32 && (r.key ?? '').length >= 1 && (r.key ?? '').length <= 256 && uint64(r.version) && idOk(r.originId, false);
  if (!p.members.every((r) => memberOk(r.member) && idOk(r.fromId, false))) return false;
  if (!p.rumors.every(rumorOk)) return false;
  if (p.ping && !(idOk(p.ping.targetId, false) && idOk(p.ping.fromId, false))) return false;
  if (p.ack && !(idOk(p.ack.fromId, false) && uint64(p.ack.clockMs))) return false;
  if (p.nack && !idOk(p.nack.fromId, false)) return false;
  if (p.pingReq && !(memberOk(p.pingReq.target) && idOk(p.pingReq.fromId, true) && portOk(p.pingReq.fromPort) && (p.pingReq.fromAddr ?? '').length <= 64)) return false;
  if (p.pushPull && !((p.pushPull.members ?? []).every(memberOk) && (p.pushPull.rumors ?? []).every(rumorOk) && idOk(p.pushPull.fromId, false))) return false;
  return true;
}

/** After decoding, uint64 fields must be plain safe numbers (the generated types promise numbers). */
const isSafeNumber = (v: unknown): boolean => v === undefined || v === null || (typeof v === 'number' && Number.isSafeInteger(v));
/** Straight out of protobufjs, a uint64 may still be a Long. */
const fitsNumber = (v: unknown): boolean => {
  if (v === undefined || v === null) return true;
  if (typeof v === 'number') return Number.isSafeInteger(v);
  const { low, high } = v as { low: number; high: number };
  return Number.isSafeInteger((high >>> 0) * 2 ** 32 + (low >>> 0));
};

/**
 * A stand-in for the membership engine: it applies only what decodes ok and
 * remembers everything it applied, so a test can show that garbage left its
 * state unchanged.
 */
class FakeReceiver {
  readonly codec = new WireCodec(keyring);
  readonly members = new Map<string, string>();
  readonly rumors = new Map<string, string>();
  readonly counted: DropCounters = emptyDropCounters();
  decodes = 0;
  applied = 0;

  receive(data: Uint8Array, maxBytes: number): DecodeResult {
    const result = this.codec.decode(data, maxBytes);
    this.decodes++;
    if (!result.ok) {
      this.counted[result.reason]++;
      return result;
    }
    assert.ok(legitimate(result.packet, isSafeNumber), 'a non-legitimate packet decoded ok');
    this.applied++;
    const p = result.packet;
    for (const m of [...p.members.map((r) => r.member), p.pingReq?.target, ...(p.pushPull?.members ?? [])]) {
      if (m) this.members.set(m.id ?? '', JSON.stringify([m.addr, m.port, m.incarnation, m.state]));
    }
    for (const r of [...p.rumors, ...(p.pushPull?.rumors ?? [])]) this.rumors.set(`${r.kind}/${r.key}`, JSON.stringify([r.version, r.originId]));
    return result;
  }

  snapshot(): string {
    return JSON.stringify([[...this.members].sort(), [...this.rumors].sort(), this.applied]);
  }

  /** The codec's counters agree with what the receiver saw, reason by reason. */
  assertCountersAddUp(): void {
    assert.deepEqual(this.codec.dropped, this.counted);
    const dropped = Object.values(this.codec.dropped).reduce((a, b) => a + b, 0);
    assert.equal(dropped + this.applied, this.decodes);
  }
}

// ---------------------------------------------------------------- generators

const arbId = fc.oneof(fc.string({ minLength: 1, maxLength: 64 }), fc.constantFrom('pg-1', 'nœud-é', '节点-3', '🦀'));
const arbMember = fc.record({
  id: arbId,
  addr: fc.oneof(fc.ipV4(), fc.constantFrom('::1', 'fd00::11', '2001:db8::dead:beef')),
  port: fc.integer({ min: 1, max: 65535 }),
  incarnation: fc.oneof(fc.nat(1000), fc.maxSafeNat()),
  state: fc.integer({ min: 0, max: 4 }),
  meta: fc.uint8Array({ maxLength: 64 }),
});
const arbRumor = fc.record({
  kind: fc.constantFrom('service', 'service-config', 'departure', 'election'),
  key: fc.string({ minLength: 1, maxLength: 40 }),
  version: fc.oneof(fc.nat(1000), fc.maxSafeNat()),
  payload: fc.uint8Array({ maxLength: 64 }),
  originId: arbId,
});
const arbBody = fc.oneof(
  fc.constant({}),
  fc.record({ ping: fc.record({ seq: fc.nat({ max: 0xffffffff }), targetId: arbId, fromId: arbId }) }),
  fc.record({ ack: fc.record({ seq: fc.nat({ max: 0xffffffff }), clockMs: fc.integer({ min: 0, max: 4_102_444_800_000 }), fromId: arbId }) }),
  fc.record({ nack: fc.record({ seq: fc.nat({ max: 0xffffffff }), fromId: arbId }) }),
  fc.record({
    pingReq: fc.record({ seq: fc.nat(), target: arbMember, fromId: arbId, fromAddr: fc.ipV4(), fromPort: fc.integer({ min: 1, max: 65535 }), wantNack: fc.boolean() }),
  }),
  fc.record({ pushPull: fc.record({ members: fc.array(arbMember, { maxLength: 6 }), rumors: fc.array(arbRumor, { maxLength: 4 }), join: fc.boolean(), fromId: arbId }) }),
);
/** Valid packets as the membership engine would send them. */
const arbPacket: fc.Arbitrary<PacketInit> = fc
  .tuple(arbBody, fc.array(fc.record({ member: arbMember, fromId: arbId }), { maxLength: 4 }), fc.array(arbRumor, { maxLength: 3 }))
  .map(([body, members, rumors]) => ({ ...body, members, rumors }));

/** Byte strings shaped like protobuf (valid tags, some nesting) but with random content and wire types. */
type GarbageField = { no: number; wire: 'varint' | 'fixed32' | 'fixed64' | 'bytes' | 'nested' | 'group'; n: number; bytes: Uint8Array; nested: GarbageField[] };
const arbGarbageFields: fc.Arbitrary<GarbageField[]> = fc.letrec<{ fields: GarbageField[]; field: GarbageField }>((tie) => ({
  fields: fc.array(tie('field'), { maxLength: 6, depthIdentifier: 'garbage' }),
  field: fc.record({
    no: fc.oneof(fc.integer({ min: 1, max: 11 }), fc.integer({ min: 1, max: 536870911 })),
    wire: fc.constantFrom('varint', 'fixed32', 'fixed64', 'bytes', 'nested', 'nested', 'group'),
    n: fc.oneof(fc.integer({ min: -1, max: 70000 }), fc.maxSafeNat(), fc.constant(2 ** 53 + 2)),
    bytes: fc.uint8Array({ maxLength: 40 }),
    nested: fc.oneof({ depthSize: 'small', maxDepth: 3, depthIdentifier: 'garbage' }, fc.constant([]), tie('fields')),
  }) as fc.Arbitrary<GarbageField>,
})).fields;

function encodeGarbage(fields: GarbageField[]): Uint8Array {
  const w = protobuf.Writer.create();
  for (const f of fields) {
    const wireType = { varint: 0, fixed64: 1, bytes: 2, nested: 2, group: 3, fixed32: 5 }[f.wire];
    w.uint32(((f.no << 3) | wireType) >>> 0);
    if (f.wire === 'varint') w.uint64(f.n < 0 ? 0 : f.n);
    else if (f.wire === 'fixed32') w.fixed32(f.n >>> 0);
    else if (f.wire === 'fixed64') w.fixed64(Math.max(0, f.n));
    else if (f.wire === 'bytes') w.bytes(f.bytes);
    else if (f.wire === 'nested') w.bytes(encodeGarbage(f.nested));
    else w.bytes(f.bytes); // a "group" start followed by whatever: usually unterminated
  }
  return w.finish();
}

const big = (n: number): string => 'x'.repeat(n);
const okMember = { id: 'm1', addr: '10.0.0.1', port: 7946, incarnation: 1, state: 0 };
/** Each makes an otherwise valid packet semantically invalid in one way. */
const DEFECTS: Array<[string, (p: PacketInit) => PacketInit]> = [
  ['member port 0', (p) => ({ ...p, members: [...(p.members ?? []), { member: { ...okMember, port: 0 } }] })],
  ['member port 70000', (p) => ({ ...p, members: [{ member: { ...okMember, port: 70000 } }, ...(p.members ?? [])] })],
  ['member id 10 KB', (p) => ({ ...p, members: [...(p.members ?? []), { member: { ...okMember, id: big(10 * 1024) } }] })],
  ['member id empty', (p) => ({ ...p, members: [...(p.members ?? []), { member: { ...okMember, id: '' } }] })],
  ['member addr empty', (p) => ({ ...p, members: [...(p.members ?? []), { member: { ...okMember, addr: '' } }] })],
  ['member addr 65 chars', (p) => ({ ...p, members: [...(p.members ?? []), { member: { ...okMember, addr: big(65) } }] })],
  ['member state 7 (unknown enum)', (p) => ({ ...p, members: [...(p.members ?? []), { member: { ...okMember, state: 7 } }] })],
  ['member state -1 (unknown enum)', (p) => ({ ...p, members: [...(p.members ?? []), { member: { ...okMember, state: -1 } }] })],
  ['member incarnation 2^60', (p) => ({ ...p, members: [...(p.members ?? []), { member: { ...okMember, incarnation: 2 ** 60 } }] })],
  ['member meta 513 bytes', (p) => ({ ...p, members: [...(p.members ?? []), { member: { ...okMember, meta: new Uint8Array(513) } }] })],
  ['member rumor without member', (p) => ({ ...p, members: [...(p.members ?? []), { fromId: 'x' }] })],
  ['member rumor fromId 10 KB', (p) => ({ ...p, members: [...(p.members ?? []), { member: okMember, fromId: big(10 * 1024) }] })],
  ['rumor kind empty', (p) => ({ ...p, rumors: [...(p.rumors ?? []), { kind: '', key: 'k', version: 1 }] })],
  ['rumor key empty', (p) => ({ ...p, rumors: [...(p.rumors ?? []), { kind: 'service', key: '', version: 1 }] })],
  ['rumor kind 33 chars', (p) => ({ ...p, rumors: [...(p.rumors ?? []), { kind: big(33), key: 'k', version: 1 }] })],
  ['rumor key 10 KB', (p) => ({ ...p, rumors: [...(p.rumors ?? []), { kind: 'service', key: big(10 * 1024), version: 1 }] })],
  ['rumor version 2^53', (p) => ({ ...p, rumors: [...(p.rumors ?? []), { kind: 'service', key: 'k', version: 2 ** 53 }] })],
  ['rumor origin 65 chars', (p) => ({ ...p, rumors: [...(p.rumors ?? []), { kind: 'service', key: 'k', version: 1, originId: big(65) }] })],
  ['ping target id 10 KB', (p) => ({ ...p, ack: null, nack: null, pingReq: null, pushPull: null, ping: { seq: 1, targetId: big(10 * 1024) } })],
  ['ack from id 65 chars', (p) => ({ ...p, ping: null, nack: null, pingReq: null, pushPull: null, ack: { seq: 1, fromId: big(65) } })],
  ['ack clock 2^60', (p) => ({ ...p, ping: null, nack: null, pingReq: null, pushPull: null, ack: { seq: 1, clockMs: 2 ** 60, fromId: 'a' } })],
  ['nack from id 10 KB', (p) => ({ ...p, ping: null, ack: null, pingReq: null, pushPull: null, nack: { seq: 1, fromId: big(10 * 1024) } })],
  ['ping-req without target', (p) => ({ ...p, ping: null, ack: null, nack: null, pushPull: null, pingReq: { seq: 1, fromId: 'a', fromPort: 1 } })],
  ['ping-req from port 0', (p) => ({ ...p, ping: null, ack: null, nack: null, pushPull: null, pingReq: { seq: 1, target: okMember, fromId: 'a', fromPort: 0 } })],
  ['ping-req from id empty', (p) => ({ ...p, ping: null, ack: null, nack: null, pushPull: null, pingReq: { seq: 1, target: okMember, fromId: '', fromPort: 9 } })],
  ['ping-req from addr 65 chars', (p) => ({ ...p, ping: null, ack: null, nack: null, pushPull: null, pingReq: { seq: 1, target: okMember, fromId: 'a', fromPort: 9, fromAddr: big(65) } })],
  ['ping-req target port 0', (p) => ({ ...p, ping: null, ack: null, nack: null, pushPull: null, pingReq: { seq: 1, target: { ...okMember, port: 0 }, fromId: 'a', fromPort: 9 } })],
  ['push-pull member state 99', (p) => ({ ...p, ping: null, ack: null, nack: null, pingReq: null, pushPull: { members: [okMember, { ...okMember, id: 'm2', state: 99 }] } })],
  ['push-pull rumor kind empty', (p) => ({ ...p, ping: null, ack: null, nack: null, pingReq: null, pushPull: { rumors: [{ kind: '', key: 'k' }] } })],
  ['push-pull from id 10 KB', (p) => ({ ...p, ping: null, ack: null, nack: null, pingReq: null, pushPull: { members: [okMember], fromId: big(10 * 1024) } })],
];

/** Plain, comparable form of a packet (uint64 as numbers, bytes as base64). */
function canonical(p: Packet): unknown {
  return Packet.toObject(p, { longs: Number, bytes: String, defaults: true, arrays: true });
}

// --------------------------------------------------------------------- tests

describe('wire codec under hostile input', () => {
  it(`random bytes (${RUNS.randomBytes} runs): dropped with the reason the bytes deserve, state unchanged`, () => {
    const rx = new FakeReceiver();
    const baseline = rx.snapshot();
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: MAX_DATAGRAM_BYTES + 100, size: 'max' }),
        fc.boolean(),
        fc.constantFrom(MAX_DATAGRAM_BYTES, MAX_STREAM_FRAME_BYTES),
        (bytes, versionByte, maxBytes) => {
          // Half the time the version byte is right, so the bytes get as far as authentication.
          if (versionByte && bytes.length > 0) bytes[0] = ENVELOPE_VERSION;
          const result = rx.receive(bytes, maxBytes);
          assert.deepEqual(result, { ok: false, reason: envelopeReason(bytes, maxBytes) });
        },
      ),
      { numRuns: RUNS.randomBytes },
    );
    assert.equal(rx.snapshot(), baseline);
    assert.ok(rx.codec.dropped.auth_failed > 0 && rx.codec.dropped.truncated > 0 && rx.codec.dropped.bad_version > 0 && rx.codec.dropped.oversized > 0);
    rx.assertCountersAddUp();
  });

  it(`valid sealed packets with bit flips, truncation, extension, splicing (${RUNS.mutatedSealed} runs): all refused, state unchanged`, () => {
    const rx = new FakeReceiver();
    // Start from a non-empty member table, so "unchanged" means something.
    const seedPacket = rx.codec.encode({ members: [{ member: okMember }], rumors: [{ kind: 'service', key: 'm1/pg.default', version: 3 }] });
    assert.ok(rx.receive(seedPacket, MAX_DATAGRAM_BYTES).ok);
    const baseline = rx.snapshot();
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('flips' as const), at: fc.array(fc.nat(), { minLength: 2, maxLength: 8 }), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('extend' as const), tail: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
      fc.record({ kind: fc.constant('splice' as const), other: arbPacket }),
    );
    fc.assert(
      fc.property(arbPacket, mutation, fc.constantFrom(MAX_DATAGRAM_BYTES, MAX_STREAM_FRAME_BYTES), (packet, m, maxBytes) => {
        const sealed = rx.codec.encode(packet);
        let bytes: Buffer;
        switch (m.kind) {
          case 'flip':
            bytes = Buffer.from(sealed);
            bytes[m.at % bytes.length]! ^= 1 << m.bit;
            break;
          case 'flips':
            bytes = Buffer.from(sealed);
            for (const at of new Set(m.at.map((a) => a % bytes.length))) bytes[at]! ^= 1 << m.bit;
            break;
          case 'truncate':
            bytes = sealed.subarray(0, m.at % sealed.length);
            break;
          case 'extend':
            bytes = Buffer.concat([sealed, m.tail]);
            break;
          case 'splice': {
            // Header and nonce of one authentic packet, ciphertext and tag of another.
            const other = rx.codec.encode(m.other);
            bytes = Buffer.concat([sealed.subarray(0, 13), other.subarray(13)]);
            break;
          }
        }
        const result = rx.receive(bytes, maxBytes);
        assert.deepEqual(result, { ok: false, reason: envelopeReason(bytes, maxBytes) });
      }),
      { numRuns: RUNS.mutatedSealed },
    );
    assert.equal(rx.snapshot(), baseline);
    rx.assertCountersAddUp();
  });

  it(`random plaintext sealed with the ring key (${RUNS.sealedGarbage} runs): only legitimate packets get through`, () => {
    const rx = new FakeReceiver();
    let legit = 0;
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), arbGarbageFields.map(encodeGarbage)), (plaintext) => {
        // What the answer must be, decided independently of the codec's own validation.
        let expectOk: boolean;
        try {
          expectOk = legitimate(Packet.decode(plaintext), fitsNumber);
        } catch {
          expectOk = false;
        }
        const result = rx.receive(sealPlaintext(plaintext), MAX_STREAM_FRAME_BYTES);
        if (expectOk) {
          legit++;
          assert.ok(result.ok, `legitimate packet refused: ${JSON.stringify(result)}`);
          for (const m of result.packet.members) assert.equal(typeof m.member!.incarnation, 'number');
        } else {
          assert.deepEqual(result, { ok: false, reason: 'malformed' });
        }
      }),
      { numRuns: RUNS.sealedGarbage },
    );
    // Both branches were exercised: some garbage happens to be a legitimate (mostly empty) packet.
    assert.ok(legit > 0 && legit < RUNS.sealedGarbage, `legit ${legit}`);
    assert.equal(rx.applied, legit);
    rx.assertCountersAddUp();
  });

  it(`sealed packets with one semantically invalid part (${RUNS.semanticallyInvalid} runs): malformed, state unchanged`, () => {
    const rx = new FakeReceiver();
    const baseline = rx.snapshot();
    const seen = new Set<string>();
    fc.assert(
      fc.property(arbPacket, fc.constantFrom(...DEFECTS), (packet, [name, defect]) => {
        seen.add(name);
        const result = rx.receive(rx.codec.encode(defect(packet)), MAX_STREAM_FRAME_BYTES);
        assert.deepEqual(result, { ok: false, reason: 'malformed' }, name);
      }),
      { numRuns: RUNS.semanticallyInvalid },
    );
    assert.equal(seen.size, DEFECTS.length);
    assert.equal(rx.snapshot(), baseline);
    assert.equal(rx.codec.dropped.malformed, RUNS.semanticallyInvalid);
    rx.assertCountersAddUp();
  });

  it(`valid packets (${RUNS.validRoundTrip} runs) round-trip exactly, with uint64 fields as numbers`, () => {
    const rx = new FakeReceiver();
    fc.assert(
      fc.property(arbPacket, (packet) => {
        const sealed = rx.codec.encode(packet);
        const result = rx.receive(sealed, MAX_STREAM_FRAME_BYTES);
        assert.ok(result.ok, JSON.stringify(result));
        assert.deepEqual(canonical(result.packet), canonical(Packet.fromObject(packet)));
        const p = result.packet;
        for (const m of [...p.members.map((r) => r.member!), ...(p.pushPull?.members ?? []), ...(p.pingReq ? [p.pingReq.target!] : [])]) {
          assert.equal(typeof m.incarnation, 'number');
        }
        for (const r of [...p.rumors, ...(p.pushPull?.rumors ?? [])]) assert.equal(typeof r.version, 'number');
        if (p.ack) assert.equal(typeof p.ack.clockMs, 'number');
        // The same packet is also accepted under the datagram limit when it fits.
        if (sealed.length <= MAX_DATAGRAM_BYTES) assert.ok(rx.receive(sealed, MAX_DATAGRAM_BYTES).ok);
      }),
      { numRuns: RUNS.validRoundTrip },
    );
    assert.equal(Object.values(rx.codec.dropped).reduce((a, b) => a + b, 0), 0);
    rx.assertCountersAddUp();
  });
});
