/**
 * The shipper's disk spool on its own: order, acknowledgement, crash
 * safety (a torn last record, a cursor that lags), the size cap dropping
 * the oldest, and sequences that never repeat.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeRecord, encodeRecord, RECORD_HEADER_BYTES, Spool, type SpoolRecord } from '../../src/plugins/shipper/spool.js';

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hasup-spool-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const payload = (i: number) => JSON.stringify({ message: `event ${i}`, pad: 'x'.repeat(i % 50) });

function appendMany(spool: Spool, from: number, count: number): number[] {
  const seqs: number[] = [];
  for (let i = from; i < from + count; i++) seqs.push(spool.append(i % 2, 1_700_000_000_000 + i, payload(i))!);
  return seqs;
}

function readAll(spool: Spool): SpoolRecord[] {
  const out: SpoolRecord[] = [];
  for (;;) {
    const batch = spool.read(100, 64 * 1024);
    if (batch.length === 0) return out;
    out.push(...batch);
  }
}

const segmentFiles = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.spool')).sort();

test('records round-trip through the frame; a flipped byte or a short buffer is recognised', () => {
  const record = encodeRecord(2 ** 40 + 7, 1_700_000_000_123.5, 1, Buffer.from('{"a":1}'));
  const decoded = decodeRecord(record, 0);
  assert.ok('record' in decoded);
  assert.deepEqual({ ...decoded.record, payload: decoded.record.payload.toString() }, { seq: 2 ** 40 + 7, time: 1_700_000_000_123.5, kind: 1, payload: '{"a":1}' });
  assert.deepEqual(decodeRecord(record.subarray(0, RECORD_HEADER_BYTES - 1), 0), { need: RECORD_HEADER_BYTES });
  assert.deepEqual(decodeRecord(record.subarray(0, record.length - 1), 0), { need: record.length });
  const flipped = Buffer.from(record);
  flipped[record.length - 2] ^= 0x01;
  assert.deepEqual(decodeRecord(flipped, 0), { corrupt: true });
});

test('appends are read back in order, once, across segments; acked segments are deleted', withDir(async (dir) => {
  const spool = Spool.open({ dir, maxBytes: 64 * 1024 * 1024, segmentBytes: 16 * 1024 });
  const seqs = appendMany(spool, 0, 2000);
  assert.deepEqual(seqs, Array.from({ length: 2000 }, (_, i) => i + 1));
  assert.equal(spool.unread(), 0, 'nothing is readable before it is written');
  await spool.flush();
  assert.equal(spool.unread(), 2000);
  assert.ok(segmentFiles(dir).length > 5, 'several segments');
  const records = readAll(spool);
  assert.deepEqual(records.map((r) => r.seq), seqs);
  assert.equal(records[1234]!.payload.toString(), payload(1234));
  assert.equal(records[3]!.kind, 1);
  assert.equal(records[3]!.time, 1_700_000_000_003);
  assert.equal(spool.read(10, 1024).length, 0, 'read hands each record out once');

  const before = segmentFiles(dir).length;
  spool.ack(1000);
  assert.ok(segmentFiles(dir).length < before, 'fully acknowledged segments are removed');
  assert.equal(spool.stats().backlog, 1000);
  spool.ack(2000);
  assert.equal(segmentFiles(dir).length, 1, 'the segment being written stays');
  await spool.close();
}));

test('a restart resumes after the cursor: acknowledged events are not read again, the others are', withDir(async (dir) => {
  const first = Spool.open({ dir, segmentBytes: 16 * 1024, cursorIntervalMs: 0 });
  appendMany(first, 0, 500);
  await first.flush();
  first.read(300, 1 << 20);
  first.ack(300);
  await first.close();
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'cursor.json'), 'utf8')), { acked: 300 });

  const second = Spool.open({ dir, segmentBytes: 16 * 1024 });
  assert.equal(second.generation, first.generation, 'the generation (part of document ids) survives restarts');
  assert.deepEqual(readAll(second).map((r) => r.seq), Array.from({ length: 200 }, (_, i) => 301 + i));
  assert.equal(second.append(0, Date.now(), 'next'), 501, 'sequences continue');
  await second.close();
}));

test('kill -9 mid-write: a torn last record is cut off, everything before it is kept, appends continue cleanly', withDir(async (dir) => {
  const first = Spool.open({ dir });
  appendMany(first, 0, 100);
  await first.flush();
  // Simulate the crash: no close(); the last record is half on disk.
  const [file] = segmentFiles(dir);
  const path = join(dir, file!);
  const full = statSync(path).size;
  truncateSync(path, full - 7);

  const second = Spool.open({ dir });
  const stats = second.stats();
  assert.equal(stats.written, 99, 'the torn 100th record is not there');
  assert.ok(stats.tornBytes > 0);
  assert.equal(statSync(path).size < full - 7, true, 'the torn bytes are cut from the file');
  assert.equal(second.append(0, Date.now(), 'after crash'), 100, 'its sequence is given to the next event');
  await second.flush();
  const records = readAll(second);
  assert.deepEqual(records.map((r) => r.seq), Array.from({ length: 100 }, (_, i) => i + 1));
  assert.equal(records.at(-1)!.payload.toString(), 'after crash');
  await second.close();
}));

test('garbage after the last record (a crash while extending the file) is ignored the same way', withDir(async (dir) => {
  const first = Spool.open({ dir });
  appendMany(first, 0, 10);
  await first.close();
  appendFileSync(join(dir, segmentFiles(dir)[0]!), Buffer.from([0xff, 0xff, 0x00, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26]));
  const second = Spool.open({ dir });
  assert.deepEqual(readAll(second).map((r) => r.seq), Array.from({ length: 10 }, (_, i) => i + 1));
  assert.equal(second.stats().corrupt, 1);
  await second.close();
}));

test('a cursor that lags behind deleted segments never makes sequences repeat', withDir(async (dir) => {
  const first = Spool.open({ dir, segmentBytes: 16 * 1024 });
  appendMany(first, 0, 1000);
  await first.flush();
  first.ack(1000);
  await first.close();
  // An old cursor (as if the last cursor write was lost): the segment names still say how far sequences went.
  writeFileSync(join(dir, 'cursor.json'), '{"acked":10}\n');
  const second = Spool.open({ dir, segmentBytes: 16 * 1024 });
  const next = second.append(0, Date.now(), 'x')!;
  assert.ok(next > 1000 - 200, `sequence ${next} does not go back into delivered territory`);
  const third = Spool.open({ dir: join(dir, 'elsewhere') });
  assert.notEqual(third.generation, second.generation, 'a new spool has a new generation, so its ids cannot collide');
  await second.close();
  await third.close();
}));

test('over the size cap the oldest segments are dropped and counted, the newest events kept', withDir(async (dir) => {
  const spool = Spool.open({ dir, maxBytes: 64 * 1024, segmentBytes: 16 * 1024 });
  const total = 3000;
  for (let i = 0; i < total; i++) {
    spool.append(0, Date.now(), payload(i));
    if (i % 100 === 99) await spool.flush();
  }
  await spool.flush();
  const stats = spool.stats();
  assert.ok(stats.bytes <= 64 * 1024 + 16 * 1024, `spool holds ${stats.bytes} bytes, about its cap`);
  assert.ok(stats.droppedCapacity > 0, 'drops are counted');
  const records = readAll(spool);
  assert.equal(records.length + stats.droppedCapacity, total, 'every event is either kept or counted as dropped');
  assert.equal(records.at(-1)!.seq, total, 'the newest event is kept');
  assert.deepEqual(records.map((r) => r.seq), Array.from({ length: records.length }, (_, i) => total - records.length + 1 + i), 'what is kept is the newest, contiguous');
  await spool.close();
}));

test('dropping the oldest does not count events that were already delivered', withDir(async (dir) => {
  const spool = Spool.open({ dir, maxBytes: 64 * 1024, segmentBytes: 16 * 1024 });
  appendMany(spool, 0, 200);
  await spool.flush();
  spool.read(200, 1 << 20);
  spool.ack(200);
  for (let i = 0; i < 2000; i++) spool.append(0, Date.now(), payload(i));
  await spool.flush();
  const stats = spool.stats();
  assert.equal(readAll(spool).length + stats.droppedCapacity, 2000);
  await spool.close();
}));

test('when the disk falls far behind, new events are refused and counted instead of growing memory', withDir(async (dir) => {
  const spool = Spool.open({ dir, maxPendingBytes: 64 * 1024 });
  let refused = 0;
  for (let i = 0; i < 5000; i++) if (spool.append(0, Date.now(), payload(i)) === undefined) refused++;
  assert.ok(refused > 0);
  assert.equal(spool.stats().droppedPending, refused);
  await spool.flush();
  assert.equal(readAll(spool).length, 5000 - refused);
  await spool.close();
}));
