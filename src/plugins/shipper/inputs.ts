/**
 * The shipper's log inputs (Journalbeat's role): children's output lines,
 * the supervisor's own pino log, and the systemd journal where there is one.
 * Each turns what it reads into an ECS document and pushes it; none of them
 * waits for the spool or Elasticsearch.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { LogEntry, LogSink } from '../../supervisor/log-sink.js';
import type { Logger } from '../../supervisor/log.js';
import { childLineDocument, journalDocument, supervisorLogDocument, type EventOrigin } from './ecs.js';
import { KIND_LOGS } from './indices.js';

/** What the inputs push into: the Shipper, or anything with its push(). */
export interface EventTarget {
  push(kind: number, time: number, doc: object): number | undefined;
}

/** A LogSink for the daemon's MultiSink: every line a supervised child prints. */
export class ChildLinesInput implements LogSink {
  constructor(
    private readonly target: EventTarget,
    private readonly origin: EventOrigin,
  ) {}

  write(entry: LogEntry): void {
    try {
      this.target.push(KIND_LOGS, entry.time, childLineDocument(entry, this.origin));
    } catch {
      // A sink never throws: the line is lost to shipping, not to the file sink.
    }
  }
}

/**
 * Holds children's first lines (up to `max`) until the daemon knows whether
 * it ships: services start before that is decided, and a database's
 * startup lines are among those an operator looks for first.
 */
export class EarlyLinesBuffer implements LogSink {
  private lines: LogEntry[] | undefined = [];

  constructor(private readonly max = 5000) {}

  write(entry: LogEntry): void {
    if (this.lines && this.lines.length < this.max) this.lines.push(entry);
  }

  /** Hands the held lines to `sink` (none when shipping is off) and holds no more. */
  release(sink?: LogSink): void {
    const lines = this.lines ?? [];
    this.lines = undefined;
    if (sink) for (const entry of lines) sink.write(entry);
  }
}

/**
 * The supervisor's own pino lines. write() is called on the logging path,
 * so it only queues the text; parsing and spooling happen on the next turn
 * of the event loop, in one go for every line logged meanwhile.
 */
export class SupervisorLogInput {
  private queued: string[] = [];
  private scheduled = false;
  /** Lines refused because the queue was full (the loop stalled for long). */
  dropped = 0;

  constructor(
    private readonly target: EventTarget,
    private readonly origin: EventOrigin,
    private readonly maxQueued = 10_000,
  ) {}

  write(line: string): void {
    if (this.queued.length >= this.maxQueued) {
      this.dropped++;
      return;
    }
    this.queued.push(line);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  private drain(): void {
    this.scheduled = false;
    const lines = this.queued;
    this.queued = [];
    for (const line of lines) {
      try {
        const doc = supervisorLogDocument(line, this.origin);
        this.target.push(KIND_LOGS, Date.parse(doc['@timestamp']), doc);
      } catch {
        this.dropped++;
      }
    }
  }
}

export interface JournalInputOptions {
  target: EventTarget;
  origin: EventOrigin;
  log: Logger;
  /** File keeping the cursor of the last entry spooled, so a restart resumes after it. */
  cursorFile: string;
  /** Where journald's runtime directory is; absent means no journal here. Default /run/systemd/journal. */
  journalRuntimeDir?: string;
  journalctl?: string;
}

const CURSOR_SAVE_MS = 1000;

/**
 * `journalctl -o json -f`, resumed after the last spooled entry. Where no
 * journald runs (containers, this development machine: journalctl exists but
 * follows nothing) the input says so once and does nothing.
 */
export class JournalInput {
  private child: ChildProcess | undefined;
  private cursor: string | undefined;
  private cursorTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  read = 0;

  constructor(private readonly opts: JournalInputOptions) {}

  /** Starts following; returns false (and logs why) where there is no journal. */
  start(): boolean {
    const runtime = this.opts.journalRuntimeDir ?? '/run/systemd/journal';
    if (!existsSync(runtime)) {
      this.opts.log.info({ event: 'journal_input', enabled: false, reason: `${runtime} does not exist` }, 'no systemd journal on this host: the journal input is off');
      return false;
    }
    this.cursor = this.loadCursor();
    const args = ['-o', 'json', '-f', '--no-pager', ...(this.cursor ? [`--after-cursor=${this.cursor}`] : ['-n', '0'])];
    let child: ChildProcess;
    try {
      child = spawn(this.opts.journalctl ?? 'journalctl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      this.opts.log.info({ event: 'journal_input', enabled: false, reason: (err as Error).message }, 'journalctl cannot run: the journal input is off');
      return false;
    }
    this.child = child;
    child.on('error', (err) => this.opts.log.info({ event: 'journal_input', enabled: false, reason: err.message }, 'journalctl cannot run: the journal input is off'));
    child.on('exit', (code, signal) => {
      if (!this.stopped) this.opts.log.warn({ event: 'journal_input_exit', code, signal }, 'journalctl exited; the journal input stops until the next start');
      this.saveCursor();
    });
    createInterface({ input: child.stdout! }).on('line', (line) => this.onLine(line));
    createInterface({ input: child.stderr! }).on('line', (line) => this.opts.log.debug({ event: 'journalctl_stderr', line }, 'journalctl'));
    this.opts.log.info({ event: 'journal_input', enabled: true, resumed: Boolean(this.cursor) }, 'following the systemd journal');
    return true;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.cursorTimer);
    this.child?.kill('SIGTERM');
    this.saveCursor();
  }

  private onLine(line: string): void {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const doc = journalDocument(entry, this.opts.origin);
    if (this.opts.target.push(KIND_LOGS, Date.parse(doc['@timestamp']), doc) === undefined) return;
    this.read++;
    if (typeof entry.__CURSOR === 'string') {
      this.cursor = entry.__CURSOR;
      this.cursorTimer ??= setTimeout(() => {
        this.cursorTimer = undefined;
        this.saveCursor();
      }, CURSOR_SAVE_MS);
    }
  }

  private loadCursor(): string | undefined {
    try {
      const text = readFileSync(this.opts.cursorFile, 'utf8').trim();
      return text || undefined;
    } catch {
      return undefined;
    }
  }

  private saveCursor(): void {
    if (!this.cursor) return;
    try {
      writeFileSync(`${this.opts.cursorFile}.tmp`, `${this.cursor}\n`, { mode: 0o600 });
      renameSync(`${this.opts.cursorFile}.tmp`, this.opts.cursorFile);
    } catch {
      // Resuming from an older cursor replays a little; nothing is lost.
    }
  }
}
