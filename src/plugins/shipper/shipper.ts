/**
 * The shipping pipeline: events in → disk spool → batched bulk `create`
 * into Elasticsearch → acknowledged → removed from the spool.
 *
 * push() only encodes the event and hands it to the spool's in-memory write
 * queue; nothing on the caller's path waits for disk or network. A batch is
 * sent when `batchMaxEvents` are waiting or the oldest waiting event is
 * `flushIntervalMs` old; up to `maxInFlight` batches are in flight. The spool
 * cursor only moves past a batch once every document in it has a final
 * verdict (delivered, already there, or rejected as invalid) and every
 * earlier batch has one too, so a crash at any point replays from the first
 * unfinished batch, and the ids (member, spool generation, sequence) turn the
 * replayed copies into conflicts instead of duplicates.
 */
import { bulkRetryDelay, interpretBulkAnswer, requestVerdict } from './bulk.js';
import { deleteExpiredIndices, installTemplates } from './index-admin.js';
import { dailyIndex, streamOfKind } from './indices.js';
import { describeError, type ElasticsearchOutput } from './output.js';
import type { Spool, SpoolRecord, SpoolStats } from './spool.js';
import type { Logger } from '../../supervisor/log.js';

export interface ShipperOptions {
  spool: Spool;
  output: ElasticsearchOutput;
  memberId: string;
  log: Logger;
  /** Documents per bulk request at most. Default 5000. */
  batchMaxEvents?: number;
  /** Uncompressed bytes per bulk request, about. Default 5 MiB. */
  batchMaxBytes?: number;
  /** A smaller batch goes once its oldest event waited this long. Default 1000 ms. */
  flushIntervalMs?: number;
  /** Bulk requests in flight at once. Default 2. */
  maxInFlight?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Daily indices older than this are deleted. Default 7. */
  retentionDays?: number;
  /** Index refresh interval in the templates, seconds. Default 5. */
  refreshIntervalS?: number;
  /** How often expired indices are looked for. Default 1 h. */
  retentionCheckMs?: number;
}

export interface ShipperStats {
  /** Events offered to push(). */
  received: number;
  /** Events acknowledged by Elasticsearch as created. */
  delivered: number;
  /** Events Elasticsearch already had (a replay): delivered before. */
  conflicts: number;
  /** Events Elasticsearch refused as invalid: dropped, by error type. */
  rejected: number;
  rejectedByType: Record<string, number>;
  /** Documents sent again after a 429/5xx verdict. */
  itemRetries: number;
  requests: number;
  /** Bulk requests that failed as a whole (no answer, 429, 5xx). */
  requestFailures: number;
  /** Uncompressed NDJSON bytes sent. */
  bytesSent: number;
  inFlight: number;
  target?: string;
  templatesInstalled: boolean;
  lastError?: string;
  spool: SpoolStats;
}

interface Batch {
  lastSeq: number;
  done: boolean;
}

/** One warning per reason per this long; the rest are counted into the next one. */
const WARN_EVERY_MS = 10_000;
const RETENTION_CHECK_MS = 3_600_000;

export class Shipper {
  private readonly batchMaxEvents: number;
  private readonly batchMaxBytes: number;
  private readonly flushIntervalMs: number;
  private readonly maxInFlight: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly retentionDays: number;
  private readonly idPrefix: string;
  private readonly outstanding: Batch[] = [];
  private readonly stats_ = { received: 0, delivered: 0, conflicts: 0, rejected: 0, itemRetries: 0, requests: 0, requestFailures: 0, bytesSent: 0 };
  private readonly rejectedByType: Record<string, number> = {};
  private lastError: string | undefined;
  private templatesInstalled = false;
  private inFlight = 0;
  private stopping = false;
  private running: Promise<void> | undefined;
  private waker: (() => void) | undefined;
  private writtenArmed = false;
  private firstWaitingAt: number | undefined;
  private retentionTimer: NodeJS.Timeout | undefined;
  private readonly sleeps = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  private readonly warned = new Map<string, { at: number; suppressed: number }>();
  private readonly deliveredWaiters: Array<{ seq: number; resolve: () => void }> = [];

  constructor(private readonly opts: ShipperOptions) {
    this.batchMaxEvents = Math.max(1, opts.batchMaxEvents ?? 5000);
    this.batchMaxBytes = Math.max(1024, opts.batchMaxBytes ?? 5 * 1024 * 1024);
    this.flushIntervalMs = Math.max(0, opts.flushIntervalMs ?? 1000);
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 2);
    this.retryBaseMs = Math.max(1, opts.retryBaseMs ?? 250);
    this.retryMaxMs = Math.max(this.retryBaseMs, opts.retryMaxMs ?? 30_000);
    this.retentionDays = Math.max(1, opts.retentionDays ?? 7);
    this.idPrefix = `${opts.memberId}-${opts.spool.generation}-`;
  }

  /**
   * The id a spooled event is stored under in Elasticsearch: member id,
   * spool generation, and the sequence in fixed-width base 36, so ids sort
   * in the order they were made (Elasticsearch's advice for ids of one's
   * own: each new id then lies past the range of older segments).
   */
  documentId(seq: number): string {
    return `${this.idPrefix}${seq.toString(36).padStart(11, '0')}`;
  }

  /**
   * Takes one event (a document from ./ecs.ts) for `kind` (KIND_LOGS,
   * KIND_METRICS); `time` is its @timestamp in ms. Returns the event's
   * sequence, or undefined if the spool refused it (counted there).
   */
  push(kind: number, time: number, doc: object): number | undefined {
    this.stats_.received++;
    let json: string;
    try {
      json = JSON.stringify(doc);
    } catch {
      return undefined;
    }
    return this.opts.spool.append(kind, time, json);
  }

  start(): void {
    if (this.running) return;
    this.running = this.run().catch((err: unknown) => {
      this.opts.log.error({ event: 'shipper_failed', err }, 'the shipper stopped on an unexpected error; events stay in the spool');
    });
  }

  /** Stops sending; waits (up to `graceMs`) for requests in flight; what is not acknowledged stays in the spool. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearTimeout(this.retentionTimer);
    for (const s of this.sleeps) {
      clearTimeout(s.timer);
      s.resolve();
    }
    this.poke();
    const deadline = Date.now() + graceMs;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await this.running;
    await this.opts.output.close();
    await this.opts.spool.close();
  }

  /** Resolves once everything pushed so far (up to sequence `seq`) is acknowledged or given up. */
  whenDelivered(seq = this.opts.spool.stats().nextSeq - 1): Promise<void> {
    if (this.opts.spool.stats().acked >= seq) return Promise.resolve();
    return new Promise((resolve) => this.deliveredWaiters.push({ seq, resolve }));
  }

  stats(): ShipperStats {
    return {
      ...this.stats_,
      rejectedByType: { ...this.rejectedByType },
      inFlight: this.inFlight,
      target: this.opts.output.lastTarget(),
      templatesInstalled: this.templatesInstalled,
      ...(this.lastError ? { lastError: this.lastError } : {}),
      spool: this.opts.spool.stats(),
    };
  }

  // ---- the loop -----------------------------------------------------------------

  private async run(): Promise<void> {
    await this.installTemplatesUntilDone();
    this.scheduleRetention(0);
    while (!this.stopping) {
      if (this.inFlight >= this.maxInFlight) {
        await this.wait();
        continue;
      }
      const unread = this.opts.spool.unread();
      if (unread === 0) {
        this.firstWaitingAt = undefined;
        await this.wait();
        continue;
      }
      const now = Date.now();
      this.firstWaitingAt ??= now;
      const lingered = now - this.firstWaitingAt;
      if (unread < this.batchMaxEvents && lingered < this.flushIntervalMs) {
        await this.wait(this.flushIntervalMs - lingered);
        continue;
      }
      const records = this.opts.spool.read(this.batchMaxEvents, this.batchMaxBytes);
      this.firstWaitingAt = undefined;
      if (records.length === 0) {
        // Written but unreadable (skipped as corrupt): let the spool catch up.
        await this.wait(100);
        continue;
      }
      const batch: Batch = { lastSeq: records.at(-1)!.seq, done: false };
      this.outstanding.push(batch);
      this.inFlight++;
      void this.deliver(records)
        .then(
          () => {
            batch.done = true;
          },
          () => {
            // Stopped before every verdict was in: not done, so the cursor stays before it and a restart replays it.
          },
        )
        .finally(() => {
          this.inFlight--;
          this.advanceCursor();
          this.poke();
        });
    }
  }

  /** Sends one batch until every document in it has a final verdict (or the shipper stops). */
  private async deliver(records: SpoolRecord[]): Promise<void> {
    let pending = records;
    let attempt = 0;
    while (pending.length > 0 && !this.stopping) {
      const body = this.bulkBody(pending);
      let answer: unknown;
      try {
        this.stats_.requests++;
        answer = await this.opts.output.bulk(body);
        this.stats_.bytesSent += body.length;
      } catch (err) {
        this.stats_.requestFailures++;
        this.lastError = describeError(err);
        const verdict = requestVerdict(err);
        this.warn(`request:${verdict}`, { event: 'ship_retry', target: this.opts.output.lastTarget(), reason: this.lastError, events: pending.length }, `bulk request to ${this.opts.output.lastTarget() ?? '?'} failed (${this.lastError}); ${verdict === 'failover' ? 'trying the next node' : 'retrying'} with backoff, events stay in the spool`);
        await this.sleep(bulkRetryDelay(attempt++, this.retryBaseMs, this.retryMaxMs));
        continue;
      }
      const outcome = interpretBulkAnswer(answer, pending.length);
      this.stats_.delivered += outcome.delivered;
      this.stats_.conflicts += outcome.conflicts;
      for (const r of outcome.rejected) {
        this.stats_.rejected++;
        this.rejectedByType[r.type] = (this.rejectedByType[r.type] ?? 0) + 1;
        const record = pending[r.position]!;
        this.warn(`rejected:${r.type}`, { event: 'ship_rejected', id: this.documentId(record.seq), status: r.status, error_type: r.type, reason: r.reason }, `Elasticsearch rejected event ${this.documentId(record.seq)} (${r.status} ${r.type}: ${r.reason}); dropped it`);
      }
      if (outcome.retry.length === 0) return;
      this.stats_.itemRetries += outcome.retry.length;
      pending = outcome.retry.map((position) => pending[position]!);
      this.warn('items:retry', { event: 'ship_retry_items', events: pending.length }, `Elasticsearch asked for ${pending.length} events to be sent again (busy or unavailable); retrying with backoff`);
      await this.sleep(bulkRetryDelay(attempt++, this.retryBaseMs, this.retryMaxMs));
    }
    if (pending.length > 0) throw new Error('stopped');
  }

  /** NDJSON of `create` actions: the daily index from the event's time, the id from its sequence. */
  private bulkBody(records: SpoolRecord[]): Buffer {
    const parts: Buffer[] = [];
    let length = 0;
    for (const r of records) {
      const action = Buffer.from(`{"create":{"_index":"${dailyIndex(streamOfKind(r.kind), r.time)}","_id":"${this.documentId(r.seq)}"}}\n`);
      parts.push(action, r.payload, NEWLINE);
      length += action.length + r.payload.length + 1;
    }
    return Buffer.concat(parts, length);
  }

  /** Acks the longest finished prefix of batches: the cursor never passes an unfinished one. */
  private advanceCursor(): void {
    let acked: number | undefined;
    while (this.outstanding.length > 0 && this.outstanding[0]!.done) acked = this.outstanding.shift()!.lastSeq;
    if (acked === undefined) return;
    this.opts.spool.ack(acked);
    const now = this.opts.spool.stats().acked;
    for (let i = this.deliveredWaiters.length - 1; i >= 0; i--) {
      const w = this.deliveredWaiters[i]!;
      if (w.seq <= now) {
        this.deliveredWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  private async installTemplatesUntilDone(): Promise<void> {
    let attempt = 0;
    while (!this.stopping) {
      try {
        await this.opts.output.request((client) => installTemplates(client, { retentionDays: this.retentionDays, refreshIntervalS: this.opts.refreshIntervalS }));
        this.templatesInstalled = true;
        this.opts.log.info({ event: 'ship_templates', target: this.opts.output.lastTarget(), retention_days: this.retentionDays }, 'index templates for logs and metrics installed');
        return;
      } catch (err) {
        this.lastError = describeError(err);
        this.warn('templates', { event: 'ship_templates_retry', target: this.opts.output.lastTarget(), reason: this.lastError }, `cannot install the index templates yet (${this.lastError}); events wait in the spool`);
        await this.sleep(bulkRetryDelay(attempt++, this.retryBaseMs, this.retryMaxMs));
      }
    }
  }

  private scheduleRetention(delayMs: number): void {
    if (this.stopping) return;
    this.retentionTimer = setTimeout(() => {
      void this.opts.output
        .request((client) => deleteExpiredIndices(client, this.retentionDays))
        .then(
          (deleted) => {
            if (deleted.length > 0) this.opts.log.info({ event: 'ship_retention', deleted }, `deleted ${deleted.length} indices older than ${this.retentionDays} days`);
          },
          (err: unknown) => this.warn('retention', { event: 'ship_retention_failed', reason: describeError(err) }, `retention sweep failed (${describeError(err)}); tried again later`),
        )
        .finally(() => this.scheduleRetention(this.opts.retentionCheckMs ?? RETENTION_CHECK_MS));
    }, delayMs);
    this.retentionTimer.unref();
  }

  // ---- waiting and warning --------------------------------------------------------

  /** Until new events are written, a batch settles, stop(), or `ms` passes. */
  private wait(ms?: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    if (!this.writtenArmed) {
      this.writtenArmed = true;
      this.opts.spool.onWritten(() => {
        this.writtenArmed = false;
        this.poke();
      });
    }
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(() => this.poke(), Math.max(1, ms));
      this.waker = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private poke(): void {
    const waker = this.waker;
    this.waker = undefined;
    waker?.();
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.sleeps.delete(entry);
          resolve();
        }, ms),
        resolve,
      };
      this.sleeps.add(entry);
    });
  }

  /**
   * Logs a warning, at most once per WARN_EVERY_MS per key: the shipper's
   * own warnings are events too, and an outage must not turn into a flood.
   */
  private warn(key: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    const last = this.warned.get(key);
    if (last && now - last.at < WARN_EVERY_MS) {
      last.suppressed++;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    this.warned.set(key, { at: now, suppressed: 0 });
    this.opts.log.warn({ ...fields, ...(suppressed > 0 ? { similar_suppressed: suppressed } : {}) }, suppressed > 0 ? `${message} (${suppressed} similar since the last warning)` : message);
  }
}

const NEWLINE = Buffer.from('\n');
