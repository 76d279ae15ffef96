import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../../src/cli/api-client.js';
import { esAccess, type EsAccess, type EsUser } from '../../src/plugins/elasticsearch/access.js';
import { withClusterCa } from '../../src/supervisor/pki/provision.js';
import { generateSecrets, writeSecretsFile } from '../../src/supervisor/secrets.js';
import type { ServiceStatus } from '../../src/supervisor/service.js';
import { LocalRing, generateRingKey, randomPortBase } from '../../test/support/member-procs.js';
import { freePort } from '../../test/support/service-harness.js';

export interface EsNode {
  /** A temporary directory for the benchmark's own files too; removed by stop(). */
  base: string;
  addr: string;
  esPort: number;
  url: string;
  /** How to reach it as each of hasup's users (plain HTTP, or with security the cluster CA and the user's password). */
  access: (user: EsUser) => EsAccess;
  /** The Elasticsearch server's pid (as hasup reports it). */
  pid: number;
  /** Stops hasup and Elasticsearch and removes `base`. */
  stop: () => Promise<void>;
}

/**
 * One Elasticsearch node as an operator runs it: `hasup run` with the
 * elasticsearch plan on 127.0.0.N (shipping off), waited on until hasup
 * says it is healthy (up to 180 s). For the benchmarks that need a real
 * Elasticsearch to write into or query. `security`: Elasticsearch's security
 * on (docs/elasticsearch.md): the member gets a cluster CA in its secrets
 * file, the node serves HTTPS only and wants one of hasup's users.
 */
export async function startEsNode(name: string, addrIndex: number, progress: (msg: string) => void, opts: { security?: boolean } = {}): Promise<EsNode> {
  const base = mkdtempSync(join(tmpdir(), `hasup-bench-${name}-`));
  chmodSync(base, 0o755);
  const gossipPort = randomPortBase();
  const keyFile = join(base, 'ring.key');
  generateRingKey(keyFile);
  const esPort = await freePort();
  const configFile = join(base, 'hasup.toml');
  const security = opts.security === true;
  writeFileSync(
    configFile,
    ['[services]', 'load = ["elasticsearch"]', '[service.elasticsearch]', `http_port = ${esPort}`, `transport_port = ${await freePort()}`, 'disk_threshold_enabled = false', ...(security ? ['security = true'] : []), '[shipping]', 'enabled = false', ''].join('\n'),
  );
  const ring = new LocalRing({ baseDir: base, gossipPort, httpPort: gossipPort + 1, keyFile });
  const addr = LocalRing.addr(addrIndex);
  let access: (user: EsUser) => EsAccess = () => ({ scheme: 'http' });
  if (security) {
    // The member's secrets with a cluster CA (as `hasup cluster create` writes them): TLS on, so security may be.
    const stateDir = join(base, `member-${addrIndex}`);
    mkdirSync(stateDir, { recursive: true });
    const secrets = await withClusterCa(generateSecrets({ ringKey: false }));
    writeSecretsFile(join(stateDir, 'secrets.json'), secrets);
    const caFile = join(base, 'ca.pem');
    writeFileSync(caFile, secrets.tls!.ca_cert);
    access = (user) => esAccess({ cfg: { security: true }, secrets, caFile }, user);
  }
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
      if (es?.health === 'ok' && es.pid !== undefined) return { base, addr, esPort, url: `${security ? 'https' : 'http'}://${addr}:${esPort}`, access, pid: es.pid, stop };
    }
    throw new Error('Elasticsearch did not become healthy within 180 s');
  } catch (err) {
    await stop();
    throw err;
  }
}
