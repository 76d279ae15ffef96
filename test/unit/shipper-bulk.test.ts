/**
 * Bulk answers, per document: delivered, already there (409), retried
 * (429, 5xx, cluster conditions), or rejected as invalid; whole-request
 * failures; randomized exponential backoff; ECS documents and level
 * inference; daily index names and retention.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bulkRetryDelay, interpretBulkAnswer, itemVerdict, requestVerdict } from '../../src/plugins/shipper/bulk.js';
import { childLineDocument, inferLevel, supervisorLogDocument, type EventOrigin } from '../../src/plugins/shipper/ecs.js';
import { dailyIndex, expiredIndices } from '../../src/plugins/shipper/indices.js';
import { elasticsearchPeerUrls } from '../../src/plugins/shipper/census.js';
import type { CensusSource } from '../../src/supervisor/rumors/service-members.js';
import type { MemberView } from '../../src/gossip/memberlist.js';

test('per-item verdicts: 201 delivered, 409 conflict, 429/5xx retry, cluster blocks retry, mapping errors rejected', () => {
  assert.equal(itemVerdict({ status: 201 }), 'delivered');
  assert.equal(itemVerdict({ status: 409, error: { type: 'version_conflict_engine_exception' } }), 'conflict');
  assert.equal(itemVerdict({ status: 429, error: { type: 'es_rejected_execution_exception' } }), 'retry');
  assert.equal(itemVerdict({ status: 503, error: { type: 'unavailable_shards_exception' } }), 'retry');
  assert.equal(itemVerdict({ status: 500 }), 'retry');
  assert.equal(itemVerdict({ status: 403, error: { type: 'cluster_block_exception' } }), 'retry');
  assert.equal(itemVerdict({ status: 404, error: { type: 'index_not_found_exception' } }), 'retry');
  assert.equal(itemVerdict({ status: 400, error: { type: 'document_parsing_exception' } }), 'rejected');
  assert.equal(itemVerdict({ status: 400, error: { type: 'mapper_parsing_exception' } }), 'rejected');
});

test('a bulk answer is read item by item, positions kept, reasons named', () => {
  const answer = {
    errors: true,
    items: [
      { create: { status: 201 } },
      { create: { status: 409, error: { type: 'version_conflict_engine_exception', reason: 'document already exists' } } },
      { create: { status: 429, error: { type: 'es_rejected_execution_exception', reason: 'queue full' } } },
      { create: { status: 400, error: { type: 'document_parsing_exception', reason: 'failed to parse field [process.pid] of type [long]', caused_by: { type: 'illegal_argument_exception', reason: 'For input string: "abc"' } } } },
      { create: { status: 201 } },
      { create: { status: 502 } },
    ],
  };
  const outcome = interpretBulkAnswer(answer, 6);
  assert.equal(outcome.delivered, 2);
  assert.equal(outcome.conflicts, 1);
  assert.deepEqual(outcome.retry, [2, 5]);
  assert.equal(outcome.rejected.length, 1);
  assert.equal(outcome.rejected[0]!.position, 3);
  assert.equal(outcome.rejected[0]!.type, 'document_parsing_exception');
  assert.match(outcome.rejected[0]!.reason, /process\.pid.*illegal_argument_exception: For input string/);
});

test('an answer that does not account for every document retries the unmentioned ones, never counts them delivered', () => {
  assert.deepEqual(interpretBulkAnswer({ errors: false, items: [{ create: { status: 201 } }] }, 3), { delivered: 1, conflicts: 0, retry: [1, 2], rejected: [] });
  assert.deepEqual(interpretBulkAnswer('<html>proxy error</html>', 2).retry, [0, 1]);
  assert.deepEqual(interpretBulkAnswer(undefined, 1).retry, [0]);
});

test('a request with no answer fails over to another node; an answer (429, 5xx) is retried where it is', () => {
  assert.equal(requestVerdict(Object.assign(new Error('connect ECONNREFUSED'), { name: 'ConnectionError' })), 'failover');
  assert.equal(requestVerdict({ name: 'TimeoutError', meta: { statusCode: undefined } }), 'failover');
  assert.equal(requestVerdict({ name: 'ResponseError', meta: { statusCode: 429 } }), 'retry');
  assert.equal(requestVerdict({ name: 'ResponseError', meta: { statusCode: 503 } }), 'retry');
});

test('backoff grows exponentially up to its cap and is randomized between half and all of it', () => {
  assert.equal(bulkRetryDelay(0, 100, 10_000, () => 0), 50);
  assert.equal(bulkRetryDelay(0, 100, 10_000, () => 1), 100);
  assert.equal(bulkRetryDelay(3, 100, 10_000, () => 1), 800);
  assert.equal(bulkRetryDelay(30, 100, 10_000, () => 1), 10_000);
  assert.equal(bulkRetryDelay(1000, 100, 10_000, () => 0), 5000);
  const spread = new Set(Array.from({ length: 50 }, () => bulkRetryDelay(5, 100, 10_000)));
  assert.ok(spread.size > 10, 'members retrying together spread out');
  for (const d of spread) assert.ok(d >= 1600 && d <= 3200);
});

const origin: EventOrigin = { memberId: 'm1', hostName: 'db-1', hostIp: '10.0.0.1', role: () => 'leader' };

test('levels are read from what services print: PostgreSQL, JSON (etcd, Elasticsearch), log4j, key=value', () => {
  assert.equal(inferLevel('2024-06-01 12:00:00.000 UTC [42] LOG:  database system is ready to accept connections'), 'info');
  assert.equal(inferLevel('2024-06-01 12:00:00.000 UTC [42] ERROR:  relation "x" does not exist'), 'error');
  assert.equal(inferLevel('2024-06-01 12:00:00.000 UTC [42] FATAL:  password authentication failed'), 'critical');
  assert.equal(inferLevel('2024-06-01 12:00:00.000 UTC [42] WARNING:  out of shared memory'), 'warning');
  assert.equal(inferLevel('{"level":"warn","ts":"2024-06-01T12:00:00Z","msg":"slow request"}'), 'warning');
  assert.equal(inferLevel('{"@timestamp":"2024-06-01T12:00:00Z","log.level":"ERROR","message":"failed"}'), 'error');
  assert.equal(inferLevel('[2024-06-01T12:00:00,000][WARN ][o.e.c.r.a.DiskThresholdMonitor] low disk'), 'warning');
  assert.equal(inferLevel('time=now level=error msg="boom"'), 'error');
  assert.equal(inferLevel('just some words about an ERRORS folder'), 'info');
});

test('ECS documents: a child line and a supervisor log line carry who, where and what', () => {
  const line = childLineDocument({ service: 'postgresql', stream: 'stderr', line: 'x [1] ERROR:  bad', pid: 42, time: Date.UTC(2024, 5, 1) }, origin);
  assert.deepEqual(line, {
    '@timestamp': '2024-06-01T00:00:00.000Z',
    message: 'x [1] ERROR:  bad',
    log: { level: 'error' },
    host: { name: 'db-1', ip: '10.0.0.1' },
    service: { name: 'postgresql' },
    process: { pid: 42 },
    event: { dataset: 'postgresql.log' },
    hasup: { member: { id: 'm1', role: 'leader' }, stream: 'stderr' },
  });
  const own = supervisorLogDocument('{"level":40,"time":1717200000000,"pid":7,"member":"m1","event":"member","peer":"p2","state":"suspect","msg":"member p2 is suspect"}', origin);
  assert.equal(own.message, 'member p2 is suspect');
  assert.deepEqual(own.log, { level: 'warning' });
  assert.deepEqual(own.service, { name: 'hasup' });
  assert.deepEqual(own.process, { pid: 7 });
  assert.deepEqual(own.labels, { event: 'member', peer: 'p2', state: 'suspect' });
  assert.equal(own['@timestamp'], '2024-06-01T00:00:00.000Z');
});

test('daily index names by UTC day, and retention picks only whole days past it', () => {
  assert.equal(dailyIndex('logs', Date.UTC(2024, 5, 1, 23, 59)), 'hasup-logs-2024.06.01');
  assert.equal(dailyIndex('metrics', Date.UTC(2024, 0, 9)), 'hasup-metrics-2024.01.09');
  const names = ['hasup-logs-2024.05.30', 'hasup-logs-2024.05.31', 'hasup-logs-2024.06.01', 'hasup-logs-2024.06.07', 'hasup-metrics-2024.01.01', 'hasup-logs-other'];
  assert.deepEqual(expiredIndices(names, 'logs', 7, Date.UTC(2024, 6 - 1, 7, 12)), ['hasup-logs-2024.05.30'], 'the 31st still holds events younger than 7 days');
});

test('failover targets from the census: other members running Elasticsearch, healthy first, dead and self left out', () => {
  const member = (id: string, addr: string, state: MemberView['state']): MemberView => ({ id, addr, port: 9638, incarnation: 1, state, meta: new Uint8Array(), since: 0 });
  const rumor = (memberId: string, service: string, payload: Record<string, unknown>) => ({ kind: 'service', key: `${memberId}/${service}.default`, version: 1, originId: memberId, payload: Buffer.from(JSON.stringify(payload)) });
  const running = (health: string, port: number) => ({ state: 'running', pid: 1, health, since: 0, config_version: 0, ports: { http_port: port, transport_port: 9300 } });
  const census = {
    self: () => member('me', '10.0.0.1', 'alive'),
    members: () => [member('me', '10.0.0.1', 'alive'), member('b', '10.0.0.2', 'alive'), member('c', '10.0.0.3', 'alive'), member('d', '10.0.0.4', 'dead'), member('e', 'fd00::5', 'suspect')],
    rumors: () => [
      rumor('me', 'elasticsearch', running('ok', 9200)),
      rumor('c', 'elasticsearch', running('ok', 9201)),
      rumor('b', 'elasticsearch', running('critical', 9200)),
      rumor('b', 'postgresql', { ...running('ok', 5432), ports: { port: 5432 } }),
      rumor('d', 'elasticsearch', running('ok', 9200)),
      rumor('e', 'elasticsearch', running('ok', 9200)),
    ],
  } as unknown as CensusSource;
  assert.deepEqual(elasticsearchPeerUrls(census), ['http://10.0.0.3:9201', 'http://10.0.0.2:9200', 'http://[fd00::5]:9200']);
});
