/**
 * How the leader VIP is put on an interface and announced, with the real
 * tools (iproute2's ip, arping, hasup-ndsend) on three hosts of a bridge
 * (network namespaces): nodes 1 and 2 carry the VIP in turn, node 3 is a
 * client that talks to it. When the VIP moves from node 1 to node 2, the
 * client's neighbour cache still names node 1's MAC until node 2 announces
 * the address; after the announcement it names node 2's at once, for IPv4
 * (gratuitous ARP) and IPv6 (unsolicited neighbour advertisement). Plus the
 * start checks: a VIP outside the interface's networks or on a missing
 * interface is refused with a reason, and nothing is added. And the fence
 * (hasup-fence) removes the VIP of either family over netlink when it
 * acts, with no hasup process involved.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { defaultFenceBinary } from '../../src/plugins/fence/process-fence.js';
import { defaultNdsendBinary, findCommand, IpAddresses, parseVip, type Vip } from '../../src/plugins/vip/addresses.js';
import { eventually } from '../support/eventually.js';
import { netnsUnavailableReason, NetnsCluster, type ClusterNode } from '../support/netns-cluster.js';
import { runCommand } from '../support/netns/commands.js';

const skip = netnsUnavailableReason() ?? (findCommand('arping') ? undefined : 'arping is not installed') ?? (defaultNdsendBinary() ? undefined : 'hasup-ndsend is not built (npm run build)');

describe('the leader VIP on real interfaces: added, announced, moved, refused', { skip: skip ?? false }, () => {
  let cluster: NetnsCluster;
  let wrappers: string;
  /** IPv6 network of the bridge, one per run like the IPv4 one. */
  let v6: string;

  /** An AddressManager whose ip, arping and hasup-ndsend run inside node i's namespace. */
  function addressesOn(node: ClusterNode): IpAddresses {
    const wrap = (name: string, path: string) => {
      const file = join(wrappers, `${name}-${node.index}`);
      writeFileSync(file, `#!/bin/sh\nexec ip netns exec ${node.namespace} ${path} "$@"\n`);
      chmodSync(file, 0o755);
      return file;
    };
    return new IpAddresses({ ip: wrap('ip', findCommand('ip')!), arping: wrap('arping', findCommand('arping')!), ndsend: wrap('ndsend', defaultNdsendBinary()!) });
  }

  const ipIn = (node: ClusterNode, ...args: string[]) => runCommand('ip', ['-n', node.namespace, ...args]);
  const macOf = async (node: ClusterNode) => (JSON.parse(await ipIn(node, '-j', 'link', 'show', 'eth0')) as { address: string }[])[0]!.address;
  /** The MAC node 3's neighbour cache holds for the address, if any. */
  const cachedMac = async (address: string) => (JSON.parse(await ipIn(cluster.node(3), '-j', 'neigh', 'show', address, 'dev', 'eth0')) as { lladdr?: string }[])[0]?.lladdr;
  /** One UDP datagram from node 3 to the address, which makes its kernel resolve the address (ARP or neighbour solicitation). */
  const touch = (address: string) =>
    runCommand('ip', ['netns', 'exec', cluster.node(3).namespace, process.execPath, '-e', `const s=require('dgram').createSocket('${address.includes(':') ? 'udp6' : 'udp4'}');s.send('x',9,'${address}',()=>s.close())`]);
  /** Node 3 resolves the address and caches the MAC that answered. */
  const resolve = async (address: string) => {
    await touch(address);
    return eventually(async () => await cachedMac(address), 3000, `node 3 resolves ${address}`);
  };

  before(async () => {
    cluster = await NetnsCluster.create({ prefix: 'hsv-', nodes: 3 });
    wrappers = mkdtempSync(join(tmpdir(), 'hasup-vip-tools-'));
    v6 = `fd00:${cluster.subnet.split('.')[2]}::`;
    for (const n of cluster.nodes) await ipIn(n, 'addr', 'add', `${v6}${10 + n.index}/64`, 'dev', 'eth0', 'nodad');
  });

  after(async () => {
    await cluster?.destroy();
    if (wrappers && existsSync(wrappers)) rmSync(wrappers, { recursive: true, force: true });
  });

  async function moves(vip: Vip): Promise<void> {
    const [one, two] = [addressesOn(cluster.node(1)), addressesOn(cluster.node(2))];
    const [mac1, mac2] = [await macOf(cluster.node(1)), await macOf(cluster.node(2))];
    assert.notEqual(mac1, mac2);
    assert.equal(await one.check(vip), undefined, 'node 1 can carry the VIP');
    assert.equal(await two.check(vip), undefined, 'node 2 can carry the VIP');

    await one.add(vip);
    await one.add(vip); // already there is fine
    assert.equal(await one.present(vip), true);
    await one.announce(vip, new AbortController().signal);
    assert.equal(await resolve(vip.address), mac1, "the client's cache names node 1");

    await one.remove(vip);
    await one.remove(vip); // already gone is fine
    assert.equal(await one.present(vip), false);
    await two.add(vip);
    // Without an announcement the client still sends to node 1 (its entry is fresh for tens of seconds).
    assert.equal(await cachedMac(vip.address), mac1, "before node 2 announces, the client's cache still names node 1");
    await two.announce(vip, new AbortController().signal);
    await eventually(async () => ((await cachedMac(vip.address)) === mac2 ? true : undefined), 2000, "the client's cache names node 2");
    await two.remove(vip);
  }

  test('IPv4: the VIP moves from node 1 to node 2, and gratuitous ARP repoints the client at once', async () => {
    await moves(parseVip(`${cluster.subnet}.100/24`, 'eth0'));
  });

  test('IPv6: the VIP moves from node 1 to node 2, and an unsolicited neighbour advertisement repoints the client at once', async () => {
    await moves(parseVip(`${v6}100/64`, 'eth0'));
  });

  for (const family of [4, 6] as const) {
    test(`the fence removes an IPv${family} VIP over netlink when its freeze instant passes without a new arm`, async () => {
      const node = cluster.node(1);
      const vip = parseVip(family === 4 ? `${cluster.subnet}.101/24` : `${v6}101/64`, 'eth0');
      const one = addressesOn(node);
      await one.add(vip);
      // The fence as hasup runs it (no PostgreSQL here: its pidfile names none), inside node 1's namespace.
      const fence = spawn('ip', ['netns', 'exec', node.namespace, defaultFenceBinary(), '--pidfile', join(wrappers, 'no-postmaster.pid')], { stdio: ['pipe', 'pipe', 'ignore'] });
      const replies: string[] = [];
      createInterface({ input: fence.stdout! }).on('line', (l) => replies.push(l));
      const reply = (what: RegExp) => eventually(async () => replies.find((l) => what.test(l)), 3000, `the fence's "${what.source}"`);
      try {
        fence.stdin!.write(`vip ${vip.text} eth0\n`);
        await reply(/^vip on$/);
        const freeze = process.hrtime.bigint() + 300_000_000n;
        fence.stdin!.write(`arm ${freeze} ${freeze + 1_000_000_000n} ${freeze + 2_000_000_000n}\n`);
        await reply(/^armed /);
        assert.equal(await one.present(vip), true, 'on the interface while the fence is armed in time');
        await reply(/^frozen /);
        assert.equal(await one.present(vip), false, 'removed when the fence froze');
        fence.stdin!.write('disarm\n');
        await reply(/^disarmed$/);
      } finally {
        fence.stdin!.end();
        await new Promise((r) => (fence.exitCode !== null ? r(undefined) : fence.once('exit', r)));
        await one.remove(vip);
      }
    });
  }

  test('a VIP outside the networks of the interface, or on a missing one, is refused with the reason and never added', async () => {
    const one = addressesOn(cluster.node(1));
    const outside = parseVip('fd99::100/64', 'eth0');
    assert.match((await one.check(outside)) ?? '', /fd99::100\/64 is outside the networks of eth0 \(.*fd00:[0-9]+::11\/64/);
    assert.equal(await one.present(outside), false);
    const noIface = parseVip(`${v6}100/64`, 'eth9');
    assert.match((await one.check(noIface)) ?? '', /there is no network interface eth9 on this host/);
  });
});
