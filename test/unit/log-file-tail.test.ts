import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogFileTail } from '../../src/supervisor/log-file-tail.js';

function withTail(maxBytes: number | undefined, body: (file: string, tail: LogFileTail, seen: () => string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-tail-'));
  const file = join(dir, 'svc.log');
  const chunks: Buffer[] = [];
  const tail = new LogFileTail(file, (c) => chunks.push(c), maxBytes);
  try {
    body(file, tail, () => Buffer.concat(chunks).toString('utf8'));
  } finally {
    tail.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('follows what is appended after it starts, not what was there before', () => {
  withTail(undefined, (file, tail, seen) => {
    writeFileSync(file, 'old line\n');
    tail.start();
    appendFileSync(file, 'new 1\nnew ');
    tail.poll();
    appendFileSync(file, '2\n');
    tail.poll();
    assert.equal(seen(), 'new 1\nnew 2\n');
  });
});

test('a file that does not exist yet is followed from its creation; one found shorter than what was read, or replaced, from its start', () => {
  withTail(undefined, (file, tail, seen) => {
    tail.start();
    tail.poll();
    writeFileSync(file, 'first\nsecond\n');
    tail.poll();
    truncateSync(file, 0);
    appendFileSync(file, 'cut\n');
    tail.poll();
    writeFileSync(`${file}.new`, 'replaced\n');
    renameSync(`${file}.new`, file);
    tail.poll();
    assert.equal(seen(), 'first\nsecond\ncut\nreplaced\n');
  });
});

test('a file grown past its limit is truncated once read, and writes go on at its start', () => {
  withTail(32, (file, tail, seen) => {
    writeFileSync(file, '');
    tail.start();
    appendFileSync(file, `${'x'.repeat(40)}\n`);
    tail.poll();
    assert.equal(statSync(file).size, 0, 'truncated after reading');
    appendFileSync(file, 'next\n');
    tail.poll();
    assert.equal(seen(), `${'x'.repeat(40)}\nnext\n`);
  });
});
