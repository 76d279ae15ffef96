/**
 * The shipper against a scripted Elasticsearch (a local HTTP server that
 * answers bulk requests item by item): a 503 for a whole request, 429 for
 * some documents, one document refused as invalid, and a replay of the
 * whole spool after a lost cursor. Checks what is retried, what is dropped,
 * that nothing waits behind the invalid document, and that a replay turns
 * into conflicts, not duplicates.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { pino } from 'pino';
import { KIND_LOGS } from '../../src/plugins/shipper/indices.js';
import { ElasticsearchOutput } from '../../src/plugins/shipper/output.js';
import { Shipper } from '../../src/plugins/shipper/shipper.js';
import { Spool } from '../../src/plugins/shipper/spool.js';
import type { Logger } from '../../src/supervisor/log.js';

interface FakeEs {
  url: string;
  stored: Map<string, Record<string, unknown>>;
  bulkRequests: number;
  gzipped: number;
  close(): Promise<void>;
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks);
  return req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
}

/** Answers like Elasticsearch: 503 for the first bulk request, 429 once per "busy" document, 400 for "bad" ones, 409 for ids it has. */
async function fakeElasticsearch(): Promise<FakeEs> {
  const stored = new Map<string, Record<string, unknown>>();
  const busySeen = new Set<string>();
  const state = { bulkRequests: 0, gzipped: 0 };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const data = await body(req);
      res.setHeader('content-type', 'application/json');
      // The client refuses to talk to a server that does not say it is Elasticsearch.
      res.setHeader('x-elastic-product', 'Elasticsearch');
      if (!req.url?.startsWith('/_bulk')) {
        res.end(req.url?.startsWith('/_cat') ? '[]' : '{"acknowledged":true}');
        return;
      }
      state.bulkRequests++;
      if (req.headers['content-encoding'] === 'gzip') state.gzipped++;
      if (state.bulkRequests === 1) {
        res.statusCode = 503;
        res.end('{"error":{"type":"unavailable_shards_exception","reason":"not yet"},"status":503}');
        return;
      }
      const lines = data.toString('utf8').split('\n').filter(Boolean);
      const items = [];
      for (let i = 0; i < lines.length; i += 2) {
        const id = (JSON.parse(lines[i]!) as { create: { _id: string } }).create._id;
        const doc = JSON.parse(lines[i + 1]!) as { message: string };
        if (stored.has(id)) items.push({ create: { status: 409, error: { type: 'version_conflict_engine_exception', reason: 'document already exists' } } });
        else if (doc.message.startsWith('bad')) items.push({ create: { status: 400, error: { type: 'document_parsing_exception', reason: 'failed to parse field [message]' } } });
        else if (doc.message.startsWith('busy') && !busySeen.has(id)) {
          busySeen.add(id);
          items.push({ create: { status: 429, error: { type: 'es_rejected_execution_exception', reason: 'queue full' } } });
        } else {
          stored.set(id, doc);
          items.push({ create: { status: 201 } });
        }
      }
      res.end(JSON.stringify({ errors: items.some((it) => it.create.status !== 201), items }));
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    stored,
    get bulkRequests() {
      return state.bulkRequests;
    },
    get gzipped() {
      return state.gzipped;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function capture(): { lines: Array<Record<string, unknown>>; log: Logger } {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, log: pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) }) };
}

function shipperFor(dir: string, url: string, log: Logger): Shipper {
  return new Shipper({ spool: Spool.open({ dir, cursorIntervalMs: 0 }), output: new ElasticsearchOutput({ urls: () => [url] }), memberId: 'm1', log, flushIntervalMs: 20, batchMaxEvents: 40, retryBaseMs: 10, retryMaxMs: 50 });
}

test('503 and 429 are retried, an invalid document is dropped without holding up the rest, a replay is only conflicts', { timeout: 30_000 }, async () => {
  const es = await fakeElasticsearch();
  const dir = mkdtempSync(join(tmpdir(), 'hasup-pipeline-'));
  try {
    const { lines, log } = capture();
    const first = shipperFor(dir, es.url, log);
    first.start();
    const messages: string[] = [];
    for (let i = 0; i < 100; i++) messages.push(i === 37 ? 'bad 37' : i % 10 === 3 ? `busy ${i}` : `fine ${i}`);
    for (const m of messages) first.push(KIND_LOGS, Date.now(), { '@timestamp': new Date().toISOString(), message: m });
    await first.whenDelivered();
    const stats = first.stats();
    await first.stop();

    assert.equal(stats.requestFailures, 1, 'the 503 was one failed request');
    assert.equal(stats.itemRetries, 10, 'each busy document (3, 13, … 93) was sent again once');
    assert.equal(stats.rejected, 1);
    assert.equal(stats.delivered, 99);
    assert.equal(stats.spool.backlog, 0, 'the cursor passed everything, the rejected document included');
    assert.equal(es.stored.size, 99);
    assert.deepEqual([...es.stored.values()].map((d) => d.message).sort(), messages.filter((m) => !m.startsWith('bad')).sort());
    assert.ok(es.gzipped > 0 && es.gzipped === es.bulkRequests, 'bulk bodies are gzipped');
    const warning = lines.find((l) => l.event === 'ship_rejected');
    assert.equal(warning?.error_type, 'document_parsing_exception');
    assert.match(String(warning?.msg), /rejected event m1-[0-9a-f]{8}-[0-9a-z]{11} \(400 document_parsing_exception: failed to parse field \[message\]\); dropped it/);
    assert.ok(lines.some((l) => l.event === 'ship_retry'), 'the failed request is logged');

    // A crash that lost the cursor: everything is sent again, and nothing is stored twice.
    writeFileSync(join(dir, 'cursor.json'), '{"acked":0}\n');
    const second = shipperFor(dir, es.url, capture().log);
    second.start();
    await second.whenDelivered(100);
    const replay = second.stats();
    await second.stop();
    assert.equal(replay.conflicts, 99);
    assert.equal(replay.delivered, 0);
    assert.equal(replay.rejected, 1);
    assert.equal(es.stored.size, 99);
  } finally {
    await es.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a node that does not answer is passed over for the next one in the list; the list is read on every request', { timeout: 30_000 }, async () => {
  const es = await fakeElasticsearch();
  const dir = mkdtempSync(join(tmpdir(), 'hasup-failover-'));
  try {
    const dead = 'http://127.0.0.1:1';
    const output = new ElasticsearchOutput({ urls: () => [dead, es.url], downForMs: 60_000 });
    const shipper = new Shipper({ spool: Spool.open({ dir }), output, memberId: 'm2', log: capture().log, flushIntervalMs: 10, retryBaseMs: 10, retryMaxMs: 20 });
    shipper.start();
    for (let i = 0; i < 10; i++) shipper.push(KIND_LOGS, Date.now(), { '@timestamp': new Date().toISOString(), message: `fine ${i}` });
    await shipper.whenDelivered();
    assert.equal(output.current(), es.url, 'the dead node stays passed over');
    assert.equal(shipper.stats().target, es.url);
    assert.equal(es.stored.size, 10);
    await shipper.stop();
  } finally {
    await es.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
