import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LineSplitter, MultiSink, RotatingFileSink, formatEntry, type LogEntry, type LogSink } from '../../src/supervisor/log-sink.js';

function splitAll(chunks: (string | Buffer)[], maxLineBytes?: number): { line: string; truncated: boolean }[] {
  const out: { line: string; truncated: boolean }[] = [];
  const splitter = new LineSplitter((line, truncated) => out.push({ line, truncated }), maxLineBytes);
  for (const chunk of chunks) splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  splitter.end();
  return out;
}

const lines = (result: { line: string }[]): string[] => result.map((r) => r.line);

test('splits on newlines, joins partial lines across chunks, strips CR', () => {
  assert.deepEqual(lines(splitAll(['one\ntw', 'o\nthr', 'ee\r\n', '\nfour'])), ['one', 'two', 'three', '', 'four']);
});

test('end() flushes a final line without newline, and only once', () => {
  const out: string[] = [];
  const splitter = new LineSplitter((line) => out.push(line));
  splitter.push(Buffer.from('tail'));
  assert.deepEqual(out, []);
  splitter.end();
  splitter.end();
  assert.deepEqual(out, ['tail']);
});

test('a multi-byte character split across chunks survives', () => {
  const bytes = Buffer.from('héllo wörld\n');
  assert.deepEqual(lines(splitAll([bytes.subarray(0, 2), bytes.subarray(2, 9), bytes.subarray(9)])), ['héllo wörld']);
});

test('a long line is cut at the cap, marked truncated, and its rest skipped', () => {
  const long = 'x'.repeat(100);
  const result = splitAll([`${long}\nshort\n`], 32);
  assert.deepEqual(result, [
    { line: 'x'.repeat(32), truncated: true },
    { line: 'short', truncated: false },
  ]);
});

test('a long line arriving in many chunks is cut once and memory stays bounded', () => {
  const chunks: string[] = [];
  for (let i = 0; i < 1000; i++) chunks.push('y'.repeat(1000));
  chunks.push('\nnext\n');
  const result = splitAll(chunks, 16 * 1024);
  assert.equal(result.length, 2);
  assert.equal(result[0]!.line.length, 16 * 1024);
  assert.equal(result[0]!.truncated, true);
  assert.deepEqual(result[1], { line: 'next', truncated: false });
});

test('a line of exactly the cap is not truncated', () => {
  assert.deepEqual(splitAll(['abcd\n'], 4), [{ line: 'abcd', truncated: false }]);
});

test('the cut never leaves half a multi-byte character', () => {
  const result = splitAll([`${'é'.repeat(10)}\n`], 5); // 2 bytes each: 5 bytes = 2.5 chars
  assert.deepEqual(result, [{ line: 'éé', truncated: true }]);
});

test('a throwing consumer does not stop the splitter', () => {
  const seen: string[] = [];
  const splitter = new LineSplitter((line) => {
    seen.push(line);
    throw new Error('consumer bug');
  });
  splitter.push(Buffer.from('a\nb\n'));
  assert.deepEqual(seen, ['a', 'b']);
});

function entry(i: number, extra: Partial<LogEntry> = {}): LogEntry {
  return { service: 'pg', stream: i % 2 === 0 ? 'stdout' : 'stderr', line: `line ${i} "quoted" \u0001`, pid: 42, time: 1_700_000_000_000 + i, ...extra };
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'hasup-logsink-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function readJsonLines(path: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(path, 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('RotatingFileSink writes one JSON object per line, round-tripping awkward text', async () => {
  await withDir(async (dir) => {
    const sink = new RotatingFileSink({ dir: join(dir, 'logs'), fileName: 'pg.log' });
    sink.write(entry(1));
    sink.write(entry(2, { truncated: true }));
    await sink.close();
    const records = await readJsonLines(join(dir, 'logs', 'pg.log'));
    assert.deepEqual(records, [
      { time: 1_700_000_000_001, service: 'pg', stream: 'stderr', pid: 42, line: 'line 1 "quoted" \u0001' },
      { time: 1_700_000_000_002, service: 'pg', stream: 'stdout', pid: 42, line: 'line 2 "quoted" \u0001', truncated: true },
    ]);
    assert.deepEqual(sink.stats(), { written: 2, dropped: 0, rotations: 0, errors: 0 });
    sink.write(entry(3)); // after close: ignored, not thrown
  });
});

test('RotatingFileSink rotates at the size limit and keeps only N old files, newest lines last', async () => {
  await withDir(async (dir) => {
    const oneLine = Buffer.byteLength(formatEntry(entry(100)));
    const sink = new RotatingFileSink({ dir, fileName: 'pg.log', maxBytes: oneLine * 10, keep: 2 });
    const total = 55;
    for (let i = 100; i < 100 + total; i++) {
      sink.write(entry(i));
      // Let some writes drain between bursts, so rotation happens both with and without a queue.
      if (i % 7 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await sink.close();
    const files = (await readdir(dir)).sort();
    assert.deepEqual(files, ['pg.log', 'pg.log.1', 'pg.log.2']);
    const oldest = await readJsonLines(join(dir, 'pg.log.2'));
    const older = await readJsonLines(join(dir, 'pg.log.1'));
    const current = await readJsonLines(join(dir, 'pg.log'));
    for (const file of [oldest, older]) assert.equal(file.length, 10);
    const kept = [...oldest, ...older, ...current].map((r) => r.time as number);
    // The kept lines are exactly the last ones written, in order, with none lost or duplicated.
    const expected = Array.from({ length: kept.length }, (_, k) => 1_700_000_000_000 + 100 + total - kept.length + k);
    assert.deepEqual(kept, expected);
    assert.equal(sink.stats().rotations, 5);
  });
});

test('RotatingFileSink appends to an existing file and counts its size', async () => {
  await withDir(async (dir) => {
    const oneLine = Buffer.byteLength(formatEntry(entry(1)));
    const first = new RotatingFileSink({ dir, fileName: 'x.log', maxBytes: oneLine * 3, keep: 1 });
    first.write(entry(1));
    first.write(entry(3));
    await first.close();
    const second = new RotatingFileSink({ dir, fileName: 'x.log', maxBytes: oneLine * 3, keep: 1 });
    second.write(entry(5));
    second.write(entry(7)); // would make 4 lines: rotates first
    await second.close();
    assert.equal((await readJsonLines(join(dir, 'x.log.1'))).length, 3);
    assert.deepEqual((await readJsonLines(join(dir, 'x.log'))).map((r) => r.time), [1_700_000_000_007]);
  });
});

test('RotatingFileSink drops and counts lines when the disk falls behind, instead of buffering without bound', async () => {
  await withDir(async (dir) => {
    const sink = new RotatingFileSink({ dir, fileName: 'burst.log', maxBacklogBytes: 4096 });
    const total = 5000;
    for (let i = 0; i < total; i++) sink.write(entry(i)); // one synchronous burst: nothing drains meanwhile
    await sink.close();
    const { written, dropped } = sink.stats();
    assert.ok(dropped > 0, 'some lines dropped');
    assert.equal(written + dropped, total);
    const onDisk = await readJsonLines(join(dir, 'burst.log'));
    assert.equal(onDisk.length, written);
    assert.ok(written * Buffer.byteLength(formatEntry(entry(0))) < 4096 * 2, `backlog bound held (${written} lines queued)`);
  });
});

test('RotatingFileSink that cannot open its file drops and counts, without throwing', async () => {
  await withDir(async (dir) => {
    // A directory path that runs through a regular file can never be created.
    await writeFile(join(dir, 'plain-file'), '');
    const blocked = new RotatingFileSink({ dir: join(dir, 'plain-file', 'logs'), fileName: 'x.log' });
    blocked.write(entry(1));
    blocked.write(entry(2));
    assert.equal(blocked.stats().dropped, 2);
    assert.equal(blocked.stats().written, 0);
    assert.ok(blocked.stats().errors >= 1);
    assert.match(blocked.stats().lastError ?? '', /ENOTDIR|EEXIST/);
    await blocked.close();
  });
});

test('MultiSink fans out, and one throwing sink does not starve the others', async () => {
  const got: LogEntry[] = [];
  let closed = 0;
  const good: LogSink = { write: (e) => got.push(e), close: async () => void closed++ };
  const bad: LogSink = {
    write: () => {
      throw new Error('broken sink');
    },
    close: async () => {
      throw new Error('broken close');
    },
  };
  const multi = new MultiSink([bad, good]);
  const late: LogEntry[] = [];
  const lateSink: LogSink = { write: (e) => late.push(e) };
  multi.add(lateSink);
  multi.write(entry(1));
  multi.remove(lateSink);
  multi.write(entry(2));
  assert.deepEqual(got.map((e) => e.time), [1_700_000_000_001, 1_700_000_000_002]);
  assert.equal(late.length, 1);
  await multi.close();
  assert.equal(closed, 1);
});
