/**
 * The shipping indices' replicas against a real Elasticsearch 8 (one node,
 * under `hasup run`): installTemplates puts the replica rule
 * (auto_expand_replicas 0-1) on the template and on daily indices that
 * exist already, whatever their replicas were; on one node that is 0
 * replicas and green. A new daily index gets the rule from the template.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@elastic/elasticsearch';
import { installTemplates } from '../../src/plugins/shipper/index-admin.js';
import { installRoot } from '../../src/supervisor/install-paths.js';
import { startEsNode, type EsNode } from '../../bench/support/es-node.js';
import { waitFor } from '../support/service-harness.js';

const skip = existsSync(join(installRoot(), 'vendor', 'elasticsearch', 'home')) ? false : 'Elasticsearch is not fetched (npm run bootstrap)';
const ADDR_INDEX = 93;

describe('shipping indices follow the Elasticsearch node count', { skip }, () => {
  let node: EsNode;
  let es: Client;

  before(async () => {
    node = await startEsNode('replicas', ADDR_INDEX, () => undefined);
    es = new Client({ node: node.url });
  });

  after(async () => {
    await es?.close();
    await node?.stop();
  });

  const indexSettings = async (index: string) => {
    const all = await es.indices.getSettings({ index });
    return all[index]!.settings!.index!;
  };

  test('existing daily indices made with fixed replicas get auto_expand_replicas 0-1: 0 replicas and green on one node', async () => {
    // As an index made by hand or restored from a snapshot: one fixed replica, yellow on one node.
    await es.indices.create({ index: 'hasup-logs-2020.01.01', settings: { number_of_shards: 1, number_of_replicas: 1 } });
    await es.indices.create({ index: 'hasup-metrics-2020.01.01', settings: { number_of_shards: 1, number_of_replicas: 2 } });
    await es.indices.create({ index: 'app-other', settings: { number_of_shards: 1, number_of_replicas: 1 } });
    assert.equal((await es.cluster.health({ index: 'hasup-logs-2020.01.01' })).status, 'yellow');

    await installTemplates(es, { retentionDays: 7 });

    for (const index of ['hasup-logs-2020.01.01', 'hasup-metrics-2020.01.01']) {
      await waitFor(`${index} at 0 replicas`, 30_000, async () => ((await indexSettings(index)).number_of_replicas === '0' ? true : undefined), 200);
      assert.equal((await indexSettings(index)).auto_expand_replicas, '0-1', index);
    }
    await waitFor('the shipping indices green', 30_000, async () => ((await es.cluster.health({ index: 'hasup-*' })).status === 'green' ? true : undefined), 200);
    // Only the shipping indices are touched.
    const other = await indexSettings('app-other');
    assert.equal(other.number_of_replicas, '1');
    assert.equal(other.auto_expand_replicas, undefined);
  });

  test('a new daily index gets the rule from the template; installing again with nothing to change is fine', async () => {
    await es.index({ index: 'hasup-logs-2020.01.02', document: { '@timestamp': '2020-01-02T00:00:00Z', message: 'hello' }, refresh: true });
    const s = await indexSettings('hasup-logs-2020.01.02');
    assert.equal(s.auto_expand_replicas, '0-1');
    assert.equal(s.number_of_replicas, '0');
    await installTemplates(es, { retentionDays: 7 });
    assert.equal((await es.cluster.health({ index: 'hasup-*' })).status, 'green');
  });
});
