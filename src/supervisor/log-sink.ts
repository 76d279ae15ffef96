/**
 * Where a child's output goes: one entry per line.
 *
 * Sinks must never throw and never block the event loop for long: the
 * supervisor calls write() for every line a database prints, and a slow disk
 * must cost log lines (counted as dropped), not supervision.
 *
 * On-disk format of RotatingFileSink: JSON lines, one object per output line,
 *   {"time":1712345678901,"service":"postgresql","stream":"stderr","pid":4242,"line":"...","truncated":true}
 * `time` is ms since the epoch (when hasup read the line); `truncated` appears
 * only on lines cut at the line cap. JSON keeps any byte a child prints
 * (quotes, escapes, control characters) unambiguous, and the Elasticsearch
 * shipper can read the files back without a parser of its own.
 */
import { closeSync, createWriteStream, fstatSync, mkdirSync, openSync, renameSync, rmSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';

export interface LogEntry {
  service: string;
  stream: 'stdout' | 'stderr';
  line: string;
  pid: number;
  /** ms since the epoch. */
  time: number;
  /** Set when the line was longer than the cap and its tail was dropped. */
  truncated?: boolean;
}

export interface LogSink {
  /** Must not throw and must return quickly. */
  write(entry: LogEntry): void;
  /** Flushes and releases resources. */
  close?(): Promise<void>;
}

/** Longest line kept, in bytes; the rest of a longer line is dropped and the entry marked truncated. */
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024;

/**
 * Splits a byte stream into lines on '\n'. A line that arrives in pieces is
 * held until its newline (or end()); a line longer than the cap is emitted at
 * the cap, marked truncated, and its remainder is skipped up to the next
 * newline, so one runaway line cannot grow memory without bound.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private heldBytes = 0;
  private skippingRest = false;

  constructor(
    private readonly onLine: (line: string, truncated: boolean) => void,
    private readonly maxLineBytes = DEFAULT_MAX_LINE_BYTES,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline === -1 ? chunk.length : newline;
      if (this.skippingRest) {
        if (newline === -1) return;
        this.skippingRest = false;
        start = newline + 1;
        continue;
      }
      const piece = chunk.subarray(start, end);
      const room = this.maxLineBytes - this.heldBytes;
      if (piece.length > room) {
        this.hold(piece.subarray(0, room));
        this.emit(true);
        if (newline === -1) {
          this.skippingRest = true;
          return;
        }
      } else if (newline === -1) {
        // Copy: a small slice would otherwise pin the whole (often 64 KiB) chunk.
        this.hold(Buffer.from(piece));
        return;
      } else {
        this.hold(piece);
        this.emit(false);
      }
      start = newline + 1;
    }
  }

  /** Emits a final line that had no newline (the stream ended). */
  end(): void {
    if (this.heldBytes > 0 || this.parts.length > 0) this.emit(false);
    this.skippingRest = false;
  }

  private hold(piece: Buffer): void {
    this.parts.push(piece);
    this.heldBytes += piece.length;
  }

  private emit(truncated: boolean): void {
    const bytes = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.heldBytes);
    this.parts = [];
    this.heldBytes = 0;
    let line = bytes.toString('utf8');
    if (truncated) {
      // The cut may split a multi-byte character; drop the half character rather than log garbage.
      if (line.endsWith('\uFFFD')) line = line.slice(0, -1);
    } else if (line.endsWith('\r')) {
      line = line.slice(0, -1);
    }
    try {
      this.onLine(line, truncated);
    } catch {
      // A consumer's bug must not stop line capture.
    }
  }
}

export function formatEntry(entry: LogEntry): string {
  const record: Record<string, unknown> = {
    time: entry.time,
    service: entry.service,
    stream: entry.stream,
    pid: entry.pid,
    line: entry.line,
  };
  if (entry.truncated) record.truncated = true;
  return `${JSON.stringify(record)}\n`;
}

export interface RotatingFileSinkOptions {
  /** Directory for the log files; created if missing. */
  dir: string;
  /** Current file's name; rotated files get .1 (newest) … .keep (oldest). */
  fileName: string;
  /** Rotate before a write would make the current file larger than this. Default 10 MiB. */
  maxBytes?: number;
  /** Rotated files kept. Default 5; 0 keeps none. */
  keep?: number;
  /** Bytes queued for the disk beyond which new lines are dropped. Default 1 MiB. */
  maxBacklogBytes?: number;
}

export interface RotatingFileSinkStats {
  written: number;
  dropped: number;
  rotations: number;
  errors: number;
  lastError?: string;
}

/** Don't retry opening a failed log file more often than this. */
const REOPEN_AFTER_MS = 1000;

/**
 * JSON-lines file that rotates by size. Writes go through a write stream
 * (asynchronous); when the stream's queue passes maxBacklogBytes, lines are
 * dropped and counted. Rotation renames the current file while its stream is
 * still draining; on POSIX the stream keeps writing into the renamed file,
 * so no queued line is lost or lands in the wrong file.
 */
export class RotatingFileSink implements LogSink {
  readonly path: string;
  private readonly maxBytes: number;
  private readonly keep: number;
  private readonly maxBacklogBytes: number;
  private stream: WriteStream | undefined;
  private size = 0;
  private closed = false;
  private lastOpenFailure = 0;
  private readonly counters: RotatingFileSinkStats = { written: 0, dropped: 0, rotations: 0, errors: 0 };

  constructor(private readonly opts: RotatingFileSinkOptions) {
    this.path = join(opts.dir, opts.fileName);
    this.maxBytes = Math.max(1, opts.maxBytes ?? 10 * 1024 * 1024);
    this.keep = Math.max(0, Math.floor(opts.keep ?? 5));
    this.maxBacklogBytes = Math.max(1, opts.maxBacklogBytes ?? 1024 * 1024);
    this.open();
  }

  write(entry: LogEntry): void {
    if (this.closed) return;
    try {
      const text = formatEntry(entry);
      const bytes = Buffer.byteLength(text);
      if (!this.stream && !this.open()) {
        this.counters.dropped++;
        return;
      }
      if (this.size > 0 && this.size + bytes > this.maxBytes) this.rotate();
      const stream = this.stream;
      if (!stream || stream.writableLength > this.maxBacklogBytes) {
        this.counters.dropped++;
        return;
      }
      stream.write(text);
      this.size += bytes;
      this.counters.written++;
    } catch (err) {
      this.fail(err);
      this.counters.dropped++;
    }
  }

  stats(): RotatingFileSinkStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stream = this.stream;
    this.stream = undefined;
    if (stream) await endStream(stream);
  }

  /** Opens the current file synchronously, so a rename can never race an asynchronous open. */
  private open(): boolean {
    if (this.closed) return false;
    if (Date.now() - this.lastOpenFailure < REOPEN_AFTER_MS) return false;
    try {
      mkdirSync(this.opts.dir, { recursive: true });
      const fd = openSync(this.path, 'a', 0o640);
      try {
        this.size = fstatSync(fd).size;
      } catch (err) {
        closeSync(fd);
        throw err;
      }
      const stream = createWriteStream(this.path, { fd, flags: 'a' });
      stream.on('error', (err) => {
        if (this.stream === stream) this.stream = undefined;
        this.fail(err);
      });
      this.stream = stream;
      return true;
    } catch (err) {
      this.lastOpenFailure = Date.now();
      this.fail(err);
      return false;
    }
  }

  private rotate(): void {
    const old = this.stream;
    this.stream = undefined;
    if (old) void endStream(old);
    let rotated = false;
    try {
      // Shift .N-1 → .N … .1 → .2, then current → .1; the oldest falls off the end.
      if (this.keep === 0) {
        rmSync(this.path, { force: true });
      } else {
        rmSync(`${this.path}.${this.keep}`, { force: true });
        for (let i = this.keep - 1; i >= 1; i--) renameIfExists(`${this.path}.${i}`, `${this.path}.${i + 1}`);
        renameIfExists(this.path, `${this.path}.1`);
      }
      this.counters.rotations++;
      rotated = true;
    } catch (err) {
      this.fail(err);
    }
    this.open();
    // If the rename failed we keep appending to the big file; try again only after another maxBytes.
    if (!rotated) this.size = 0;
  }

  private fail(err: unknown): void {
    this.counters.errors++;
    this.counters.lastError = err instanceof Error ? err.message : String(err);
  }
}

function renameIfExists(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function endStream(stream: WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed) return resolve();
    stream.once('close', () => resolve());
    stream.once('error', () => resolve());
    stream.end();
  });
}

/** Fans every entry out to several sinks; one failing sink does not starve the others. */
export class MultiSink implements LogSink {
  private readonly sinks: LogSink[];

  constructor(sinks: LogSink[] = []) {
    this.sinks = [...sinks];
  }

  add(sink: LogSink): void {
    this.sinks.push(sink);
  }

  remove(sink: LogSink): void {
    const index = this.sinks.indexOf(sink);
    if (index >= 0) this.sinks.splice(index, 1);
  }

  write(entry: LogEntry): void {
    for (const sink of this.sinks) {
      try {
        sink.write(entry);
      } catch {
        // Sinks should not throw; if one does, the others still get the line.
      }
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.sinks.map((sink) => sink.close?.()));
  }
}
