import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RumorStore, compareRumors, type StoredRumor } from '../../src/gossip/rumor-store.js';

const rumor = (kind: string, key: string, version: number, payload: number[] = [], originId = 'o'): StoredRumor => ({
  kind,
  key,
  version,
  payload: Uint8Array.from(payload),
  originId,
});

test('within a slot the higher version wins; older or equal versions are refused', () => {
  const s = new RumorStore();
  assert.equal(s.apply(rumor('service-config', 'postgresql.default', 2, [1])), true);
  assert.equal(s.apply(rumor('service-config', 'postgresql.default', 1, [9])), false);
  assert.equal(s.apply(rumor('service-config', 'postgresql.default', 2, [1])), false, 'the same rumor again is not news');
  assert.equal(s.apply(rumor('service-config', 'postgresql.default', 3, [0])), true);
  assert.equal(s.get('service-config', 'postgresql.default')?.version, 3);
  assert.equal(s.size, 1);
});

test('slots are (kind, key): the same key under another kind is another slot', () => {
  const s = new RumorStore();
  s.apply(rumor('service', 'k', 5));
  s.apply(rumor('election', 'k', 1));
  assert.equal(s.size, 2);
  assert.equal(s.all('service').length, 1);
  assert.equal(s.all('election')[0]?.version, 1);
  assert.equal(s.all().length, 2);
  assert.deepEqual(s.all('nothing'), []);
});

test('a kind nobody has seen before is stored like any other', () => {
  const s = new RumorStore();
  assert.equal(s.apply(rumor('a-kind-from-the-future', 'x', 1, [42])), true);
  assert.deepEqual(s.get('a-kind-from-the-future', 'x')?.payload, Uint8Array.from([42]));
});

test('equal versions are ordered by payload bytes, then origin', () => {
  assert.ok(compareRumors(rumor('k', 'x', 1, [2]), rumor('k', 'x', 1, [1, 9])) > 0);
  assert.ok(compareRumors(rumor('k', 'x', 1, [1]), rumor('k', 'x', 1, [1, 0])) < 0, 'a prefix sorts first');
  assert.ok(compareRumors(rumor('k', 'x', 1, [1], 'b'), rumor('k', 'x', 1, [1], 'a')) > 0);
  assert.equal(compareRumors(rumor('k', 'x', 1, [1], 'a'), rumor('k', 'x', 1, [1], 'a')), 0);
  assert.ok(compareRumors(rumor('k', 'x', 2, []), rumor('k', 'x', 1, [255])) > 0, 'version before payload');
});

test('every member converges on the same winner whatever order the rumors arrive in', () => {
  const arb = fc.array(
    fc.record({
      key: fc.constantFrom('a', 'b'),
      version: fc.integer({ min: 0, max: 3 }),
      payload: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 }),
      origin: fc.constantFrom('m1', 'm2'),
    }),
    { minLength: 1, maxLength: 15 },
  );
  fc.assert(
    fc.property(arb, (items) => {
      const rumors = items.map((i) => rumor('service', i.key, i.version, i.payload, i.origin));
      const forward = new RumorStore();
      const backward = new RumorStore();
      for (const r of rumors) forward.apply(r);
      for (const r of [...rumors].reverse()) backward.apply(r);
      for (const key of ['a', 'b']) {
        const f = forward.get('service', key);
        const b = backward.get('service', key);
        assert.equal(f === undefined, b === undefined);
        if (f && b) assert.equal(compareRumors(f, b), 0);
      }
    }),
  );
});

test('listeners hear every change of a winner with the previous one', () => {
  const s = new RumorStore();
  const seen: Array<[number, number | undefined]> = [];
  s.onChange((r, prev) => seen.push([r.version, prev?.version]));
  s.apply(rumor('service', 'x', 1));
  s.apply(rumor('service', 'x', 1));
  s.apply(rumor('service', 'x', 4));
  s.apply(rumor('service', 'x', 2));
  assert.deepEqual(seen, [
    [1, undefined],
    [4, 1],
  ]);
});

test('missing optional fields of a decoded rumor are normalised', () => {
  const s = new RumorStore();
  assert.equal(s.apply({ kind: 'service', key: 'x' }), true);
  const r = s.get('service', 'x')!;
  assert.equal(r.version, 0);
  assert.equal(r.originId, '');
  assert.equal(r.payload.length, 0);
});
