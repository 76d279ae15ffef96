import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../../src/cli/api-client.js';
import type { ServiceStatus } from '../../src/supervisor/service.js';
import { LocalRing, generateRingKey, randomPortBase } from '../../test/support/member-procs.js';
import { freePort } from '../../test/support/service-harness.js';

export interface EsNode {
  /** A temporary directory for the benchmark's own files too; removed by stop(). */
  base: string;
  addr: string;
  esPort: number;
  url: string;
  /** The Elasticsearch server's pid (as hasup reports it). */
  pid: number;
  /** Stops hasup and Elasticsearch and removes `base`. */
  stop: () => Promise<void>;
}

/**
 * One Elasticsearch node as an operator runs it: `hasup run` with the
 * elasticsearch plan on 127.0.0.N (shipping off), waited on until hasup
 * says it is healthy (up to 180 s). For the benchmarks that need a real
 * Elasticsearch to write into or query.
 */
export async function startEsNode(name: string, addrIndex: number, progress: (msg: string) => void): Promise<EsNode> {
  const base = mkdtempSync(join(tmpdir(), `hasup-bench-${name}-`));
  chmodSync(base, 0o755);
  const gossipPort = randomPortBase();
  const keyFile = join(base, 'ring.key');
  generateRingKey(keyFile);
  const esPort = await freePort();
  const configFile = join(base, 'hasup.toml');
  writeFileSync(configFile, ['[services]', 'load = ["elasticsearch"]', '[service.elasticsearch]', `http_port = ${esPort}`, `transport_port = ${await freePort()}`, 'disk_threshold_enabled = false', '[shipping]', 'enabled = false', ''].join('\n'));
  const ring = new LocalRing({ baseDir: base, gossipPort, httpPort: gossipPort + 1, keyFile });
  const addr = LocalRing.addr(addrIndex);
  const stop = async () => {
    await ring.stopAll();
    rmSync(base, { recursive: true, force: true });
  };
  try {
    progress(`starting Elasticsearch on ${addr}:${esPort}`);
    ring.spawn(addrIndex, { extraArgs: ['--config', configFile] });
    await ring.ready([addrIndex], 30_000);
    const api = ApiClient.fromStateDir(join(base, `member-${addrIndex}`));
    for (const deadline = Date.now() + 180_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) {
      const es = (await api.request<{ services: ServiceStatus[] }>('GET', '/services').catch(() => ({ services: [] }))).services.find((s) => s.name === 'elasticsearch');
      if (es?.health === 'ok' && es.pid !== undefined) return { base, addr, esPort, url: `http://${addr}:${esPort}`, pid: es.pid, stop };
    }
    throw new Error('Elasticsearch did not become healthy within 180 s');
  } catch (err) {
    await stop();
    throw err;
  }
}
