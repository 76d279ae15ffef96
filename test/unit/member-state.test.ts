import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  MemberTable,
  STATE_ORDER,
  judgeClaim,
  judgeClaimAboutSelf,
  stateFromWire,
  stateToWire,
  type Claim,
  type MemberRecord,
  type MemberStateName,
} from '../../src/gossip/member-state.js';
import { seededRandom } from '../../src/gossip/sim/seeded-random.js';

const STATES: MemberStateName[] = ['alive', 'suspect', 'dead', 'left', 'departed'];
const claim = (incarnation: number, state: MemberStateName): Claim => ({ incarnation, state });

test('a member we do not know is learned only from an alive claim or kept as a departed tombstone', () => {
  assert.equal(judgeClaim(undefined, claim(0, 'alive')), 'apply');
  assert.equal(judgeClaim(undefined, claim(7, 'departed')), 'apply');
  for (const s of ['suspect', 'dead', 'left'] as const) assert.equal(judgeClaim(undefined, claim(3, s)), 'ignore', s);
});

test('a higher incarnation wins whatever the states, a lower one never does', () => {
  for (const cur of STATES.filter((s) => s !== 'departed')) {
    for (const inc of STATES.filter((s) => s !== 'departed')) {
      assert.equal(judgeClaim(claim(4, cur), claim(5, inc)), 'apply', `${inc}@5 over ${cur}@4`);
      assert.equal(judgeClaim(claim(4, cur), claim(3, inc)), 'ignore', `${inc}@3 under ${cur}@4`);
    }
  }
});

test('at equal incarnation the later state in ALIVE < SUSPECT < DEAD < LEFT wins', () => {
  for (const cur of ['alive', 'suspect', 'dead', 'left'] as const) {
    for (const inc of ['alive', 'suspect', 'dead', 'left'] as const) {
      const verdict = judgeClaim(claim(2, cur), claim(2, inc));
      if (cur === 'suspect' && inc === 'suspect') assert.equal(verdict, 'confirm');
      else assert.equal(verdict, STATE_ORDER[inc] > STATE_ORDER[cur] ? 'apply' : 'ignore', `${inc} vs ${cur}`);
    }
  }
});

test('DEPARTED overrides anything at any incarnation and nothing overrides it', () => {
  for (const cur of ['alive', 'suspect', 'dead', 'left'] as const) {
    assert.equal(judgeClaim(claim(9, cur), claim(0, 'departed')), 'apply');
  }
  for (const inc of STATES) {
    assert.equal(judgeClaim(claim(1, 'departed'), claim(1000, inc)), 'ignore', `${inc}@1000 must not undo a departure`);
  }
});

test('a member refutes a suspicion or death at its own incarnation (or a later one) by moving past it', () => {
  const self = claim(3, 'alive');
  assert.deepEqual(judgeClaimAboutSelf(self, claim(3, 'suspect'), false), { kind: 'refute', incarnation: 4 });
  assert.deepEqual(judgeClaimAboutSelf(self, claim(3, 'dead'), false), { kind: 'refute', incarnation: 4 });
  assert.deepEqual(judgeClaimAboutSelf(self, claim(8, 'dead'), false), { kind: 'refute', incarnation: 9 });
  assert.deepEqual(judgeClaimAboutSelf(self, claim(5, 'left'), false), { kind: 'refute', incarnation: 6 });
  assert.deepEqual(judgeClaimAboutSelf(self, claim(2, 'suspect'), false), { kind: 'ignore' }, 'already refuted');
  assert.deepEqual(judgeClaimAboutSelf(self, claim(3, 'alive'), false), { kind: 'ignore' });
});

test('a restarted member that hears of its previous life at a higher incarnation moves past it', () => {
  assert.deepEqual(judgeClaimAboutSelf(claim(0, 'alive'), claim(12, 'alive'), false), { kind: 'refute', incarnation: 13 });
});

test('a leaving member refutes nothing; an operator departure cannot be refuted', () => {
  assert.deepEqual(judgeClaimAboutSelf(claim(3, 'left'), claim(3, 'dead'), true), { kind: 'ignore' });
  assert.deepEqual(judgeClaimAboutSelf(claim(3, 'alive'), claim(0, 'departed'), false), { kind: 'departed' });
  assert.deepEqual(judgeClaimAboutSelf(claim(3, 'departed'), claim(99, 'alive'), false), { kind: 'ignore' });
});

test('merging is order-independent: any arrival order of the same claims ends in the same state', () => {
  const claimArb = fc.record({ incarnation: fc.integer({ min: 0, max: 5 }), state: fc.constantFrom(...STATES) });
  fc.assert(
    fc.property(fc.array(claimArb, { minLength: 1, maxLength: 12 }), fc.integer(), (claims, seed) => {
      const apply = (order: Claim[]) => {
        let cur: Claim = claim(0, 'alive');
        for (const c of order) if (judgeClaim(cur, c) === 'apply') cur = c;
        return cur;
      };
      const shuffled = [...claims];
      const random = seededRandom(seed);
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
      }
      const a = apply(claims);
      const b = apply(shuffled);
      // Departed is absorbing, whatever its incarnation; otherwise the maximum (incarnation, state) wins.
      assert.equal(a.state, b.state);
      if (a.state !== 'departed') assert.equal(a.incarnation, b.incarnation);
    }),
  );
});

test('wire states round-trip', () => {
  for (const s of STATES) assert.equal(stateFromWire(stateToWire(s)), s);
});

function record(id: string, state: MemberStateName = 'alive'): MemberRecord {
  return { id, addr: '10.0.0.1', port: 7946, incarnation: 0, state, meta: new Uint8Array(0), since: 0 };
}

test('the member table keeps counts by state and the live count right through changes and removals', () => {
  const t = new MemberTable();
  const a = record('a');
  const b = record('b');
  const c = record('c', 'dead');
  t.add(a);
  t.add(b);
  t.add(c);
  assert.equal(t.liveCount, 2);
  assert.equal(t.count('alive'), 2);
  assert.equal(t.count('dead'), 1);
  t.setState(b, 'suspect', 0, 10);
  assert.equal(t.liveCount, 2);
  assert.equal(t.count('suspect'), 1);
  assert.equal(b.since, 10);
  t.setState(b, 'dead', 0, 20);
  assert.equal(t.liveCount, 1);
  assert.equal(t.count('dead'), 2);
  t.remove('c');
  assert.equal(t.count('dead'), 1);
  assert.equal(t.size, 2);
  assert.equal(t.get('c'), undefined);
  assert.throws(() => t.add(record('a')), /already/);
});

test('sampling returns distinct members that satisfy the predicate, even when few qualify', () => {
  const t = new MemberTable();
  for (let i = 0; i < 200; i++) t.add(record(`m${i}`, i === 137 ? 'alive' : 'dead'));
  const random = seededRandom(3);
  const picked = t.sample(3, random, (m) => m.state === 'alive');
  assert.deepEqual(
    picked.map((m) => m.id),
    ['m137'],
  );
  const many = t.sample(50, random, () => true);
  assert.equal(many.length, 50);
  assert.equal(new Set(many.map((m) => m.id)).size, 50);
});
