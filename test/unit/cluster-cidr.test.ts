/**
 * `hasup cluster create|join` write pg_hba's allowed networks into the
 * node's hasup.toml: loopback plus `--cluster-cidr` (default: the /24 or
 * /64 around the advertised address), so followers and HAProxy can reach
 * PostgreSQL without hand edits. Pure functions first, then the real CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allowedCidrs, cidrContains, formatCidr, networkAround, parseCidr, renderNodeConfig } from '../../src/cli/node-config-template.js';
import { mergeLayers, renderTemplates } from '../../src/supervisor/config-layers.js';
import { parseNodeConfig } from '../../src/supervisor/config-file.js';
import { shippedPlansDir } from '../../src/supervisor/install-paths.js';
import { findPlan } from '../../src/supervisor/plan.js';
import { checkHba } from '../../src/plugins/postgresql/hba-check.js';
import { HASUP_BIN } from '../support/member-procs.js';

/** The TOML parser's tables have no prototype; compare them as plain data. */
const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

test('a CIDR is normalised to its network; IPv6 in canonical compressed form', () => {
  assert.equal(formatCidr(parseCidr('10.0.0.17/24')), '10.0.0.0/24');
  assert.equal(formatCidr(parseCidr('10.1.2.3/32')), '10.1.2.3/32');
  assert.equal(formatCidr(parseCidr('172.16.200.9/12')), '172.16.0.0/12');
  assert.equal(formatCidr(parseCidr('0.0.0.0/0')), '0.0.0.0/0');
  assert.equal(formatCidr(parseCidr('FD00:0001:0000:0000:0000:0000:0000:0011/64')), 'fd00:1::/64');
  assert.equal(formatCidr(parseCidr('2001:db8:aa:bb:cc:dd:ee:ff/56')), '2001:db8:aa::/56');
  assert.equal(formatCidr(parseCidr('::ffff:10.9.8.7/120')), '::ffff:a09:800/120');
  assert.equal(formatCidr(parseCidr('fd00::1/128')), 'fd00::1/128');
});

test('a bad CIDR is refused with what is wrong and what is expected', () => {
  for (const [bad, why] of [
    ['10.0.0.0', /no \/PREFIX/],
    ['10.0.0/24', /"10\.0\.0" is not a literal IP address/],
    ['db.example/24', /not a literal IP address/],
    ['10.0.0.0/33', /prefix length must be 0-32 for IPv4/],
    ['fd00::/129', /prefix length must be 0-128 for IPv6/],
    ['10.0.0.0/', /prefix length/],
    ['10.0.0.0/-1', /prefix length/],
    ['10.0.0.0/2a', /prefix length/],
    ['fe80::1%eth0/64', /not a literal IP address/],
  ] as const) {
    assert.throws(() => parseCidr(bad), (err: Error) => why.test(err.message) && err.message.includes(`"${bad}"`) && /ADDRESS\/PREFIX|prefix length/.test(err.message), bad);
  }
});

test('default: loopback and the /24 (IPv4) or /64 (IPv6) around the advertised address; given networks replace the default', () => {
  assert.deepEqual(allowedCidrs('10.0.0.11', []), { cidrs: ['127.0.0.0/8', '10.0.0.0/24'], advertiseCovered: true });
  assert.deepEqual(allowedCidrs('fd00:1:2:3:4:5:6:7', []).cidrs, ['127.0.0.0/8', 'fd00:1:2:3::/64']);
  assert.deepEqual(allowedCidrs('10.0.1.5', ['10.0.0.0/16', '192.168.7.0/24']), { cidrs: ['127.0.0.0/8', '10.0.0.0/16', '192.168.7.0/24'], advertiseCovered: true });
  assert.equal(allowedCidrs('10.0.1.5', ['10.0.0.0/24']).advertiseCovered, false, 'an advertised address outside every given network is noticed');
  assert.deepEqual(allowedCidrs('127.0.0.5', ['127.0.0.0/8']).cidrs, ['127.0.0.0/8'], 'no duplicates');
  assert.deepEqual(allowedCidrs('127.0.0.2', []).cidrs, ['127.0.0.0/8'], 'a loopback member\'s /24 is inside loopback\'s /8');
  assert.deepEqual(allowedCidrs('10.1.2.3', ['10.1.2.0/24', '10.0.0.0/8', '10.1.2.77/24']).cidrs, ['127.0.0.0/8', '10.0.0.0/8'], 'networks inside another listed one are dropped');
  assert.ok(cidrContains(networkAround('10.231.7.13'), '10.231.7.1'), 'the harness host (HAProxy) is in the nodes\' /24');
  assert.ok(!cidrContains(networkAround('10.231.7.13'), '10.231.8.1'));
  assert.ok(!cidrContains(networkAround('10.231.7.13'), 'fd00::1'), 'another family is never inside');
});

test('the written hasup.toml carries the networks into the PostgreSQL plan: pg_hba lets the cluster network replicate', () => {
  const toml = renderNodeConfig({ clusterName: 'prod', advertise: '10.0.0.12', peers: ['10.0.0.11:9638'], stateDir: '/var/lib/hasup', secrets: '/s.json', etcdVoters: 3, services: ['postgresql'], allowedCidrs: allowedCidrs('10.0.0.12', []).cidrs, writtenBy: 'join' });
  const cfg = parseNodeConfig(toml, 'hasup.toml');
  const layer = cfg.service!.postgresql!;
  assert.deepEqual(plain(layer), { hba: { allowed_cidrs: ['127.0.0.0/8', '10.0.0.0/24'] } });
  const plan = findPlan('postgresql', [shippedPlansDir()]);
  const merged = mergeLayers(plan.defaults, [{ name: 'hasup.toml', data: layer }]);
  const hba = renderTemplates(plan, { cfg: merged, svc: { data_dir: '/d', config_dir: '/c', run_dir: '/r' }, sys: { ip: '10.0.0.12', member_id: 'm2' } }).get('pg_hba.conf')!;
  assert.deepEqual(checkHba(hba), []);
  assert.match(hba, /^host +replication +all +10\.0\.0\.0\/24 +scram-sha-256$/m);
  assert.match(hba, /^host +all +all +10\.0\.0\.0\/24 +scram-sha-256$/m);
  assert.match(hba, /^host +all +all +127\.0\.0\.0\/8 +scram-sha-256$/m, 'loopback stays allowed');
  assert.doesNotMatch(renderNodeConfig({ clusterName: 'x', advertise: '10.0.0.1', peers: [], stateDir: '/', secrets: '/s', etcdVoters: 3, services: [], writtenBy: 'create' }), /hba/, 'no networks given to the template: no section');
});

function hasup(args: string[]): { code: number | null; stdout: string; stderr: string } {
  // Every path comes from the flags, never from the caller's environment.
  const env = { ...process.env };
  delete env.HASUP_STATE_DIR;
  delete env.HASUP_CONFIG;
  const r = spawnSync(process.execPath, [HASUP_BIN, ...args], { encoding: 'utf8', env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('hasup cluster create and join write allowed_cidrs; a bad --cluster-cidr stops them before anything is written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-cidr-'));
  try {
    const first = join(dir, 'n1');
    const created = hasup(['cluster', 'create', '--advertise', '10.20.30.11', '--state-dir', first, '--config', join(first, 'hasup.toml'), '--service', 'postgresql']);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /PostgreSQL accepts connections from 127\.0\.0\.0\/8, 10\.20\.30\.0\/24/);
    assert.deepEqual(plain(parseNodeConfig(readFileSync(join(first, 'hasup.toml'), 'utf8'), 'n1').service?.postgresql), { hba: { allowed_cidrs: ['127.0.0.0/8', '10.20.30.0/24'] } });

    const second = join(dir, 'n2');
    const secrets = join(first, 'secrets.json');
    const joined = hasup(['cluster', 'join', '10.20.30.11', '--secrets', secrets, '--advertise', '10.20.31.12', '--state-dir', second, '--print-config', '--cluster-cidr', '10.20.30.0/23', '--cluster-cidr', '192.0.2.7/32']);
    assert.equal(joined.code, 0, joined.stderr);
    assert.deepEqual(plain(parseNodeConfig(joined.stdout, 'stdout').service?.postgresql), { hba: { allowed_cidrs: ['127.0.0.0/8', '10.20.30.0/23', '192.0.2.7/32'] } });

    for (const [args, why] of [
      [['--cluster-cidr', '10.20.30.0/33'], /--cluster-cidr: "10\.20\.30\.0\/33" is not a CIDR: the prefix length must be 0-32 for IPv4/],
      [['--cluster-cidr', '10.20.30.0'], /no \/PREFIX/],
      [['--cluster-cidr', '10.99.0.0/16'], /advertised address 10\.20\.30\.13 is in none of the --cluster-cidr networks \(10\.99\.0\.0\/16\)/],
    ] as const) {
      const third = join(dir, `n3-${args[1].replace(/\W/g, '_')}`);
      const refused = hasup(['cluster', 'join', '10.20.30.11', '--secrets', secrets, '--advertise', '10.20.30.13', '--state-dir', third, '--config', join(third, 'hasup.toml'), ...args]);
      assert.notEqual(refused.code, 0, `${args.join(' ')} refused`);
      assert.match(refused.stderr, why);
      assert.ok(!existsSync(third) || readdirSync(third).length === 0, `nothing written for ${args.join(' ')}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
