/**
 * The shipper's disk spool: every event is appended here before it is sent,
 * and removed only after Elasticsearch acknowledged it (at-least-once).
 *
 * Layout of the spool directory:
 *   meta.json            {"generation":"9f3c21ab"}: random, made with the spool; part of
 *                        every document id, so a spool that is wiped and starts again at
 *                        sequence 1 can never collide with documents already shipped
 *   cursor.json          {"acked":N}: every sequence <= N is delivered (or given up)
 *   seg-<first seq>.spool  segment files, named by the sequence of their first record
 *
 * Record (little endian): [payload length u32][crc32 u32][seq u64][time f64][kind u8][payload]
 * The CRC covers everything after itself, so a record torn by a crash in the
 * middle of a write (short header, short payload, garbage) is recognised.
 * Sequences are contiguous across segments, so only the newest segment has
 * to be scanned at open: an older segment's last sequence is the next one's
 * first minus one.
 *
 * Durability: appends are gathered in memory and written with one write()
 * per event-loop turn (asynchronously, so a slow disk never blocks
 * supervision); the active segment is fdatasync'ed every `fsyncIntervalMs`
 * (default 1 s) and on roll and close. What write() has taken survives a
 * kill -9 of the supervisor (it is in the page cache); a power loss or kernel
 * crash can cost at most the last interval, the bound journald and the Beats
 * make by default too. An fsync per write would tie log throughput to the
 * disk's flush latency (milliseconds each) for a risk that replays cannot
 * make worse: the cursor may lag, never run ahead of, what was delivered.
 *
 * Size cap: when the segments exceed `maxBytes`, the OLDEST segments go,
 * delivered or not, and their undelivered events are counted as dropped.
 * The newest events are what an operator needs after an outage.
 */
import { closeSync, fdatasync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, fstatSync, ftruncateSync, write, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';

export const RECORD_HEADER_BYTES = 25;
/** Larger records are refused (an event is a log line plus a few fields; 16 KiB lines are cut before). */
export const MAX_RECORD_PAYLOAD_BYTES = 1024 * 1024;

export interface SpoolRecord {
  seq: number;
  /** ms since the epoch: the event's own time (decides its daily index). */
  time: number;
  /** Which stream the event belongs to (the shipper's logs or metrics). */
  kind: number;
  payload: Buffer;
}

export interface SpoolOptions {
  dir: string;
  /** Cap of all segments together; the oldest go first. Default 256 MiB. */
  maxBytes?: number;
  /** A segment is closed and a new one begun past this size. Default min(16 MiB, maxBytes / 8). */
  segmentBytes?: number;
  /** fdatasync of the active segment at most this often. Default 1000 ms; 0 = after every write. */
  fsyncIntervalMs?: number;
  /** Events waiting in memory for the disk beyond this are refused (counted). Default 16 MiB. */
  maxPendingBytes?: number;
  /** Cursor file rewritten at most this often. Default 200 ms. */
  cursorIntervalMs?: number;
}

export interface SpoolStats {
  /** Next sequence to be assigned. */
  nextSeq: number;
  /** Every sequence up to this one is delivered or given up. */
  acked: number;
  /** Sequences written to disk (readable), up to this one. */
  written: number;
  /** Events in the spool not yet acknowledged. */
  backlog: number;
  bytes: number;
  segments: number;
  appended: number;
  /** Dropped because the spool was over its cap (oldest first). */
  droppedCapacity: number;
  /** Refused because the disk could not keep up (memory backlog full) or the event was too large. */
  droppedPending: number;
  /** Records found corrupt or torn (at open or when read). */
  corrupt: number;
  /** Bytes of a torn tail cut off at open. */
  tornBytes: number;
  writeErrors: number;
  lastError?: string;
}

interface Segment {
  firstSeq: number;
  /** Last sequence written into it (firstSeq - 1 while empty). */
  lastSeq: number;
  path: string;
  /** Bytes written (the file's size). */
  bytes: number;
}

interface PendingGroup {
  /** The group starts a new segment named by firstSeq. */
  newSegment: boolean;
  /** Being written: later appends go to a group of their own. */
  sealed: boolean;
  firstSeq: number;
  lastSeq: number;
  parts: Buffer[];
  bytes: number;
}

const SEGMENT_PREFIX = 'seg-';
const SEGMENT_SUFFIX = '.spool';
const READ_CHUNK_BYTES = 1024 * 1024;

function segmentName(firstSeq: number): string {
  return `${SEGMENT_PREFIX}${String(firstSeq).padStart(16, '0')}${SEGMENT_SUFFIX}`;
}

export function encodeRecord(seq: number, time: number, kind: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out.writeUInt32LE(seq % 0x1_0000_0000, 8);
  out.writeUInt32LE(Math.floor(seq / 0x1_0000_0000), 12);
  out.writeDoubleLE(time, 16);
  out.writeUInt8(kind, 24);
  payload.copy(out, RECORD_HEADER_BYTES);
  out.writeUInt32LE(crc32(out.subarray(8)), 4);
  return out;
}

type Decoded = { record: SpoolRecord; size: number } | { need: number } | { corrupt: true };

/** Decodes the record at `offset` of `buf`: the record, how many bytes are needed, or corrupt. */
export function decodeRecord(buf: Buffer, offset: number): Decoded {
  if (buf.length - offset < RECORD_HEADER_BYTES) return { need: RECORD_HEADER_BYTES };
  const length = buf.readUInt32LE(offset);
  if (length > MAX_RECORD_PAYLOAD_BYTES) return { corrupt: true };
  const size = RECORD_HEADER_BYTES + length;
  if (buf.length - offset < size) return { need: size };
  const crc = buf.readUInt32LE(offset + 4);
  if (crc32(buf.subarray(offset + 8, offset + size)) !== crc) return { corrupt: true };
  const seq = buf.readUInt32LE(offset + 8) + buf.readUInt32LE(offset + 12) * 0x1_0000_0000;
  return {
    record: { seq, time: buf.readDoubleLE(offset + 16), kind: buf.readUInt8(offset + 24), payload: buf.subarray(offset + RECORD_HEADER_BYTES, offset + size) },
    size,
  };
}

/** A spool directory; open with Spool.open (synchronous: it runs once at startup). */
export class Spool {
  readonly generation: string;
  private readonly segments: Segment[] = [];
  private readonly maxBytes: number;
  private readonly segmentBytes: number;
  private readonly fsyncIntervalMs: number;
  private readonly maxPendingBytes: number;
  private readonly cursorIntervalMs: number;
  private activeFd: number | undefined;
  private nextSeq: number;
  private acked: number;
  private writtenSeq: number;
  /**
   * Encoded records waiting for the disk, grouped by the segment they go to:
   * a group that starts a new segment is cut at append time, so a burst is
   * split into segments of the configured size like a trickle is.
   */
  private pending: PendingGroup[] = [];
  private pendingBytes = 0;
  /** Size the newest segment will have once its pending group is written. */
  private plannedSegmentBytes = 0;
  private writing = false;
  private flushScheduled = false;
  private unsynced = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private cursorTimer: NodeJS.Timeout | undefined;
  private cursorDirty = false;
  private closed = false;
  private flushWaiters: Array<() => void> = [];
  private writtenListeners: Array<() => void> = [];
  /** Reader position: the next sequence to hand out, the segment and offset holding it. */
  private readSeq: number;
  private readSegment: Segment | undefined;
  private readOffset = 0;
  private readFd: { path: string; fd: number } | undefined;
  /** Highest first sequence of any segment file found at open. */
  private firstSeqSeen = 1;
  private readonly counters = { appended: 0, droppedCapacity: 0, droppedPending: 0, corrupt: 0, tornBytes: 0, writeErrors: 0, lastError: undefined as string | undefined };

  private constructor(private readonly opts: SpoolOptions) {
    this.maxBytes = Math.max(64 * 1024, opts.maxBytes ?? 256 * 1024 * 1024);
    this.segmentBytes = Math.max(16 * 1024, opts.segmentBytes ?? Math.min(16 * 1024 * 1024, Math.floor(this.maxBytes / 8)));
    this.fsyncIntervalMs = Math.max(0, opts.fsyncIntervalMs ?? 1000);
    this.maxPendingBytes = Math.max(64 * 1024, opts.maxPendingBytes ?? 16 * 1024 * 1024);
    this.cursorIntervalMs = Math.max(0, opts.cursorIntervalMs ?? 200);
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    this.generation = this.loadGeneration();
    this.acked = this.loadCursor();
    this.loadSegments();
    const last = this.segments.at(-1);
    // Never reuse a sequence: not one below a segment file that existed, nor one the cursor passed.
    this.nextSeq = Math.max(last ? last.lastSeq + 1 : 1, this.acked + 1, this.firstSeqSeen);
    this.writtenSeq = this.nextSeq - 1;
    this.plannedSegmentBytes = last?.bytes ?? 0;
    this.readSeq = this.acked + 1;
    this.seekReader();
    // Segments wholly delivered before the crash (cursor written, unlink not yet done).
    this.removeDelivered();
  }

  static open(opts: SpoolOptions): Spool {
    return new Spool(opts);
  }

  /**
   * Appends one event; returns its sequence, or undefined when refused (the
   * disk is far behind or the payload too large: counted in droppedPending).
   * Never blocks and never throws.
   */
  append(kind: number, time: number, payload: Buffer | string): number | undefined {
    if (this.closed) return undefined;
    const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
    if (bytes.length > MAX_RECORD_PAYLOAD_BYTES || this.pendingBytes + bytes.length > this.maxPendingBytes) {
      this.counters.droppedPending++;
      return undefined;
    }
    const seq = this.nextSeq++;
    const record = encodeRecord(seq, time, kind, bytes);
    let group = this.pending.at(-1);
    const roll = this.plannedSegmentBytes >= this.segmentBytes;
    if (!group || group.sealed || roll) {
      group = { newSegment: roll, sealed: false, firstSeq: seq, lastSeq: seq, parts: [], bytes: 0 };
      this.pending.push(group);
      if (roll) this.plannedSegmentBytes = 0;
    }
    group.parts.push(record);
    group.bytes += record.length;
    group.lastSeq = seq;
    this.pendingBytes += record.length;
    this.plannedSegmentBytes += record.length;
    this.counters.appended++;
    if (!this.flushScheduled && !this.writing) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.writePending();
      });
    }
    return seq;
  }

  /** Resolves once everything appended so far is written to the file (not necessarily synced). */
  flush(): Promise<void> {
    if (this.pending.length === 0 && !this.writing) return Promise.resolve();
    return new Promise((resolve) => this.flushWaiters.push(resolve));
  }

  /** Called (once) the next time newly appended records become readable. */
  onWritten(listener: () => void): void {
    this.writtenListeners.push(listener);
  }

  /** Events written and not yet handed out by read(). */
  unread(): number {
    return Math.max(0, this.writtenSeq - this.readSeq + 1);
  }

  /**
   * The next records in order, from what is written, at most `maxRecords`
   * and about `maxBytes` (at least one record). A corrupt record ends its
   * segment: the rest of that segment is skipped and counted.
   */
  read(maxRecords: number, maxBytes: number): SpoolRecord[] {
    const out: SpoolRecord[] = [];
    let bytes = 0;
    while (out.length < maxRecords && bytes < maxBytes && this.readSeq <= this.writtenSeq) {
      const segment = this.readSegment;
      if (!segment) {
        this.seekReader();
        if (!this.readSegment) break;
        continue;
      }
      if (this.readOffset >= segment.bytes || this.readSeq > segment.lastSeq) {
        const next = this.segments[this.segments.indexOf(segment) + 1];
        if (!next) break;
        if (this.readSeq <= segment.lastSeq) this.skipCorrupt(segment, segment.lastSeq - this.readSeq + 1);
        this.readSegment = next;
        this.readOffset = 0;
        continue;
      }
      const want = Math.min(segment.bytes - this.readOffset, Math.max(READ_CHUNK_BYTES, Math.min(maxBytes - bytes, 8 * READ_CHUNK_BYTES)));
      const chunk = this.readAt(segment, this.readOffset, want);
      if (!chunk) {
        this.skipCorrupt(segment, segment.lastSeq - this.readSeq + 1);
        this.readOffset = segment.bytes;
        continue;
      }
      let offset = 0;
      while (offset < chunk.length && out.length < maxRecords && bytes < maxBytes) {
        const decoded = decodeRecord(chunk, offset);
        if ('need' in decoded) {
          if (offset > 0) break;
          // A record longer than the chunk: read exactly it next time round.
          const whole = this.readAt(segment, this.readOffset, decoded.need);
          const again = whole && whole.length >= decoded.need ? decodeRecord(whole, 0) : { corrupt: true as const };
          if ('record' in again) {
            this.take(again.record, out);
            bytes += again.size;
            this.readOffset += again.size;
          } else {
            this.skipCorrupt(segment, segment.lastSeq - this.readSeq + 1);
            this.readOffset = segment.bytes;
          }
          offset = -1;
          break;
        }
        if ('corrupt' in decoded) {
          this.skipCorrupt(segment, segment.lastSeq - this.readSeq + 1);
          this.readOffset = segment.bytes;
          offset = -1;
          break;
        }
        if (decoded.record.seq >= this.readSeq) {
          // Copy: the payload must not pin the whole chunk once the batch is sent.
          this.take({ ...decoded.record, payload: Buffer.from(decoded.record.payload) }, out);
          bytes += decoded.size;
        }
        offset += decoded.size;
      }
      if (offset > 0) this.readOffset += offset;
    }
    return out;
  }

  /**
   * Everything up to `seq` is delivered (or given up): the cursor moves, and
   * segments holding nothing newer are deleted.
   */
  ack(seq: number): void {
    if (seq <= this.acked) return;
    this.acked = Math.min(seq, this.nextSeq - 1);
    if (this.readSeq <= this.acked) {
      this.readSeq = this.acked + 1;
      this.seekReader();
    }
    this.removeDelivered();
    this.saveCursorSoon();
  }

  stats(): SpoolStats {
    const bytes = this.segments.reduce((sum, s) => sum + s.bytes, 0);
    return {
      nextSeq: this.nextSeq,
      acked: this.acked,
      written: this.writtenSeq,
      backlog: this.nextSeq - 1 - this.acked,
      bytes,
      segments: this.segments.length,
      appended: this.counters.appended,
      droppedCapacity: this.counters.droppedCapacity,
      droppedPending: this.counters.droppedPending,
      corrupt: this.counters.corrupt,
      tornBytes: this.counters.tornBytes,
      writeErrors: this.counters.writeErrors,
      ...(this.counters.lastError ? { lastError: this.counters.lastError } : {}),
    };
  }

  /** Writes what is pending, syncs, saves the cursor and closes the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    // A disk that keeps failing must not hold the shutdown forever; open() cuts any torn tail.
    await Promise.race([this.flush(), new Promise((r) => setTimeout(r, 5000).unref())]);
    this.closed = true;
    clearTimeout(this.syncTimer);
    clearTimeout(this.cursorTimer);
    if (this.activeFd !== undefined) {
      try {
        fsyncSync(this.activeFd);
      } catch {
        // Nothing more to do at close; the data is in the page cache.
      }
      closeSync(this.activeFd);
      this.activeFd = undefined;
    }
    this.closeReadFd();
    this.saveCursor();
  }

  // ---- writing ---------------------------------------------------------------

  private writePending(): void {
    const group = this.pending[0];
    if (this.writing || !group) {
      if (!this.writing) this.resolveFlushWaiters();
      return;
    }
    let segment: Segment;
    try {
      segment = this.segmentFor(group);
    } catch (err) {
      this.writeFailed(err);
      return;
    }
    const data = group.parts.length === 1 ? group.parts[0]! : Buffer.concat(group.parts, group.bytes);
    group.parts = [data];
    group.sealed = true;
    this.writing = true;
    const fd = this.activeFd!;
    const done = (err: NodeJS.ErrnoException | null, written = 0) => {
      if (!err && written < data.length) {
        // A short write (disk full, signal): the rest goes at its own offset.
        write(fd, data, written, data.length - written, segment.bytes + written, (e, more) => done(e, written + (more ?? 0)));
        return;
      }
      this.writing = false;
      if (err) {
        // The bytes may be partly on disk: cut the file back to the last whole record and retry later.
        this.counters.writeErrors++;
        this.counters.lastError = err.message;
        try {
          ftruncateSync(fd, segment.bytes);
        } catch {
          // If even that fails, open() after a restart cuts the torn tail.
        }
        setTimeout(() => this.writePending(), 1000).unref();
        return;
      }
      this.pending.shift();
      this.pendingBytes -= data.length;
      segment.bytes += data.length;
      segment.lastSeq = group.lastSeq;
      this.writtenSeq = group.lastSeq;
      this.unsynced = true;
      this.scheduleSync();
      this.enforceCap();
      const listeners = this.writtenListeners;
      this.writtenListeners = [];
      for (const l of listeners) l();
      if (this.pending.length > 0) this.writePending();
      else this.resolveFlushWaiters();
    };
    write(fd, data, 0, data.length, segment.bytes, (err, n) => done(err, n));
  }

  private writeFailed(err: unknown): void {
    this.counters.writeErrors++;
    this.counters.lastError = (err as Error).message;
    setTimeout(() => this.writePending(), 1000).unref();
  }

  private resolveFlushWaiters(): void {
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    for (const w of waiters) w();
  }

  /** The segment a pending group is written to: a new one (closing the full one) or the newest. */
  private segmentFor(group: PendingGroup): Segment {
    let segment = this.segments.at(-1);
    if (group.newSegment || !segment) {
      if (segment?.firstSeq === group.firstSeq) {
        // Created by an earlier attempt whose write failed: carry on in it.
        group.newSegment = false;
      } else {
        this.syncActive();
        if (this.activeFd !== undefined) closeSync(this.activeFd);
        this.activeFd = undefined;
        segment = { firstSeq: group.firstSeq, lastSeq: group.firstSeq - 1, path: join(this.opts.dir, segmentName(group.firstSeq)), bytes: 0 };
        this.activeFd = openSync(segment.path, 'w', 0o600);
        this.segments.push(segment);
        group.newSegment = false;
        if (!this.readSegment) this.seekReader();
        return segment;
      }
    }
    if (this.activeFd === undefined) this.activeFd = openSync(segment!.path, 'r+');
    return segment!;
  }

  private scheduleSync(): void {
    if (this.fsyncIntervalMs === 0) {
      this.syncActive();
      return;
    }
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      if (this.activeFd === undefined || !this.unsynced) return;
      this.unsynced = false;
      fdatasync(this.activeFd, (err) => {
        if (err) {
          this.counters.writeErrors++;
          this.counters.lastError = err.message;
        }
      });
    }, this.fsyncIntervalMs);
    this.syncTimer.unref();
  }

  private syncActive(): void {
    if (this.activeFd === undefined || !this.unsynced) return;
    this.unsynced = false;
    try {
      fsyncSync(this.activeFd);
    } catch (err) {
      this.counters.writeErrors++;
      this.counters.lastError = (err as Error).message;
    }
  }

  /** Over the cap: the oldest segments go (never the one being written), their undelivered events counted. */
  private enforceCap(): void {
    let total = this.segments.reduce((sum, s) => sum + s.bytes, 0);
    while (total > this.maxBytes && this.segments.length > 1) {
      const oldest = this.segments.shift()!;
      total -= oldest.bytes;
      const undelivered = Math.max(0, oldest.lastSeq - Math.max(this.acked, oldest.firstSeq - 1));
      this.counters.droppedCapacity += undelivered;
      if (this.readFd?.path === oldest.path) this.closeReadFd();
      if (oldest.lastSeq > this.acked) this.acked = oldest.lastSeq;
      this.saveCursor();
      rmSync(oldest.path, { force: true });
      if (this.readSeq <= oldest.lastSeq) {
        this.readSeq = oldest.lastSeq + 1;
        this.seekReader();
      } else if (this.readSegment === oldest) {
        this.seekReader();
      }
    }
  }

  // ---- reading ---------------------------------------------------------------

  private take(record: SpoolRecord, out: SpoolRecord[]): void {
    out.push(record);
    this.readSeq = record.seq + 1;
  }

  private skipCorrupt(segment: Segment, lost: number): void {
    if (lost <= 0) return;
    this.counters.corrupt += lost;
    this.readSeq = Math.max(this.readSeq, segment.lastSeq + 1);
  }

  /** Points the reader at the segment holding readSeq (from its start; older records are skipped as read). */
  private seekReader(): void {
    this.readSegment = this.segments.find((s) => s.lastSeq >= this.readSeq) ?? this.segments.at(-1);
    this.readOffset = 0;
    if (this.readSegment && this.readSegment.lastSeq < this.readSeq) this.readOffset = this.readSegment.bytes;
  }

  private readAt(segment: Segment, offset: number, length: number): Buffer | undefined {
    try {
      if (this.readFd?.path !== segment.path) {
        this.closeReadFd();
        this.readFd = { path: segment.path, fd: openSync(segment.path, 'r') };
      }
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const n = readSync(this.readFd.fd, buf, got, length - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      return buf.subarray(0, got);
    } catch (err) {
      this.counters.lastError = (err as Error).message;
      return undefined;
    }
  }

  private closeReadFd(): void {
    if (!this.readFd) return;
    try {
      closeSync(this.readFd.fd);
    } catch {
      // already closed
    }
    this.readFd = undefined;
  }

  // ---- cursor, meta, open ------------------------------------------------------

  private removeDelivered(): void {
    let cursorSaved = false;
    while (this.segments.length > 1 && this.segments[0]!.lastSeq <= this.acked) {
      // The cursor goes to disk before the segment goes: a crash in between must not rewind sequences.
      if (!cursorSaved) {
        this.saveCursor();
        cursorSaved = true;
      }
      const done = this.segments.shift()!;
      if (this.readFd?.path === done.path) this.closeReadFd();
      if (this.readSegment === done) this.seekReader();
      rmSync(done.path, { force: true });
    }
  }

  private saveCursorSoon(): void {
    this.cursorDirty = true;
    if (this.cursorTimer || this.closed) return;
    this.cursorTimer = setTimeout(() => {
      this.cursorTimer = undefined;
      if (this.cursorDirty) this.saveCursor();
    }, this.cursorIntervalMs);
    this.cursorTimer.unref();
  }

  /** Atomic replace: a crash leaves the old cursor or the new one, never half of one. */
  private saveCursor(): void {
    this.cursorDirty = false;
    const file = join(this.opts.dir, 'cursor.json');
    try {
      writeFileSync(`${file}.tmp`, `${JSON.stringify({ acked: this.acked })}\n`, { mode: 0o600 });
      renameSync(`${file}.tmp`, file);
    } catch (err) {
      this.counters.lastError = (err as Error).message;
    }
  }

  private loadCursor(): number {
    try {
      const parsed = JSON.parse(readFileSync(join(this.opts.dir, 'cursor.json'), 'utf8')) as { acked?: unknown };
      return typeof parsed.acked === 'number' && Number.isSafeInteger(parsed.acked) && parsed.acked >= 0 ? parsed.acked : 0;
    } catch {
      return 0;
    }
  }

  private loadGeneration(): string {
    const file = join(this.opts.dir, 'meta.json');
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as { generation?: unknown };
      if (typeof parsed.generation === 'string' && /^[0-9a-f]{8,32}$/.test(parsed.generation)) return parsed.generation;
    } catch {
      // a new spool
    }
    const generation = randomBytes(4).toString('hex');
    writeFileSync(`${file}.tmp`, `${JSON.stringify({ generation })}\n`, { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
    return generation;
  }

  /**
   * Lists the segments; older ones are taken from their names, the newest is
   * scanned record by record and cut at the first torn or corrupt record.
   */
  private loadSegments(): void {
    const names = readdirSync(this.opts.dir)
      .filter((n) => n.startsWith(SEGMENT_PREFIX) && n.endsWith(SEGMENT_SUFFIX))
      .map((n) => ({ name: n, firstSeq: Number(n.slice(SEGMENT_PREFIX.length, -SEGMENT_SUFFIX.length)) }))
      .filter((s) => Number.isSafeInteger(s.firstSeq) && s.firstSeq > 0)
      .sort((a, b) => a.firstSeq - b.firstSeq);
    for (const [i, { name, firstSeq }] of names.entries()) {
      this.firstSeqSeen = Math.max(this.firstSeqSeen, firstSeq);
      const path = join(this.opts.dir, name);
      const next = names[i + 1];
      if (next) {
        const bytes = statSize(path);
        this.segments.push({ firstSeq, lastSeq: next.firstSeq - 1, path, bytes });
      } else {
        this.segments.push(this.scanNewest(path, firstSeq));
      }
    }
    // An empty newest segment from an earlier run: appends start a fresh one at the right name.
    const last = this.segments.at(-1);
    if (last && last.bytes === 0 && this.segments.length > 0) {
      this.segments.pop();
      rmSync(last.path, { force: true });
    }
  }

  private scanNewest(path: string, firstSeq: number): Segment {
    const data = readFileSync(path);
    let offset = 0;
    let lastSeq = firstSeq - 1;
    while (offset < data.length) {
      const decoded = decodeRecord(data, offset);
      if (!('record' in decoded) || decoded.record.seq !== lastSeq + 1) break;
      lastSeq = decoded.record.seq;
      offset += decoded.size;
    }
    if (offset < data.length) {
      // A torn last record (crash mid-write) or garbage: cut it so appends continue on a clean end.
      this.counters.tornBytes += data.length - offset;
      this.counters.corrupt++;
      const fd = openSync(path, 'r+');
      try {
        ftruncateSync(fd, offset);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    return { firstSeq, lastSeq, path, bytes: offset };
  }
}

function statSize(path: string): number {
  const fd = openSync(path, 'r');
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}
