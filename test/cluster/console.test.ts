/**
 * The operator's console (docs/console.md) in Debian's Chromium against a
 * real three-node cluster: `hasup cluster create` and two joins, every node
 * running PostgreSQL and its etcd voter, node 1 Elasticsearch too, with its
 * security on (HTTPS with the cluster CA and hasup's users: every node ships
 * as hasup_shipper, the console reads as hasup_reader), every node
 * shipping its logs and metrics into it. The page is served by node 1; Chromium runs in the host's
 * namespace and reaches it over the test bridge.
 *
 * - as viewer: the indicator says OK, the members table matches
 *   `hasup status --json`, operations are absent;
 * - `kill -9` of a follower's hasup: DEGRADED naming it within 5 s, OK again
 *   once it is back;
 * - the charts have data for each member from Elasticsearch; a line written
 *   into PostgreSQL's log is found by the log search;
 * - as operator: a switchover from the page moves the leader; a request
 *   without the CSRF token is refused;
 * - screenshots of each state (1280x800 and 390x844) in
 *   test-artifacts/console-cluster/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { HaStatus } from '../../src/plugins/http/ha-status.js';
import type { ClusterView } from '../../src/plugins/http/cluster-view.js';
import { API_PORT, eventually, HaCluster, hasupIn } from '../support/ha-cluster.js';
import { netnsUnavailableReason } from '../support/netns-cluster.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join('test-artifacts', 'console-cluster');

const skip =
  netnsUnavailableReason() ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd is not installed') ??
  (existsSync('/usr/lib/postgresql/15/bin/postgres') ? null : 'PostgreSQL 15 is not installed') ??
  (spawnSync('java', ['-version'], { stdio: 'ignore' }).status === 0 ? null : 'Java (for Elasticsearch) is not installed') ??
  (existsSync(CHROMIUM) ? null : `${CHROMIUM} is not installed (scripts/bootstrap.sh installs Debian's chromium)`);

describe('the console in Chromium against three nodes', { skip: skip ?? false }, () => {
  let ha: HaCluster;
  let browser: Browser;
  let page: Page;
  const ids = new Map<number, string>();
  // The API serves TLS with the member's certificate from the cluster CA, which this Chromium does not know.
  const url = (i: number) => `https://${ha.address(i)}:${API_PORT}`;
  const shot = async (name: string, p: Page = page) => {
    mkdirSync(SHOTS, { recursive: true });
    await p.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  };
  const haWord = () => page.textContent('.ha-word');
  /** A GET through the page, under its session (the API answer the page itself gets). */
  const pageGet = <T>(path: string) => page.evaluate(async (p) => (await (await fetch(p)).json()) as unknown, path) as Promise<T>;

  async function login(p: Page, token: string): Promise<void> {
    await p.goto(`${url(1)}/ui`);
    await p.waitForSelector('#login:not([hidden])');
    await p.fill('#token', token);
    await p.click('#login-form button[type=submit]');
    await p.waitForSelector('#console:not([hidden])');
    await p.waitForSelector('#members tbody tr');
  }

  before(async () => {
    // Elasticsearch runs on node 1 only, its transport on the namespace's loopback: bound to another address
    // it enforces production bootstrap checks this machine cannot pass (docs/elasticsearch.md). Every node
    // ships into it (the census names it), metrics every 2 s, for the page's charts and logs.
    ha = await HaCluster.create({ nodes: 3, elasticsearch: { security: true } });
    for (const i of [1, 2, 3]) appendFileSync(ha.configFile(i), '\n[shipping]\nenabled = true\nmetrics_interval_s = 2\nflush_interval_ms = 500\n');
    for (const i of [1, 2, 3]) ha.startNode(i);
    await ha.whole(180_000);
    for (const i of [1, 2, 3]) ids.set(i, await ha.memberId(i));
    // Elasticsearch forms after PostgreSQL: wait until the cluster as a whole is OK.
    let last: HaStatus | undefined;
    await eventually(
      async () => {
        last = await ha.member(1).api<HaStatus>('/ha-status');
        return last.status === 'OK' ? true : undefined;
      },
      300_000,
      'the HA status OK on node 1',
      1000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last: ${JSON.stringify(last)}`);
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: true });
    page.on('pageerror', (err) => assert.fail(`script error on the page: ${err.message}`));
  });

  after(async () => {
    await browser?.close();
    if (ha) {
      mkdirSync(SHOTS, { recursive: true });
      ha.saveMemberLogs(SHOTS, 'member-');
      await ha.destroy();
    }
  });

  test('as viewer: OK, the members table matches hasup status --json, no operations', async () => {
    await login(page, ha.secrets.viewer_token!);
    await page.waitForFunction(() => document.querySelector('.ha-word')?.textContent === 'OK', undefined, { timeout: 10_000 });
    const cookies = await page.context().cookies();
    assert.ok(cookies.length > 0 && cookies.every((c) => c.secure && c.httpOnly && c.sameSite === 'Strict'), `session cookies over TLS are Secure, HttpOnly, SameSite=Strict: ${JSON.stringify(cookies.map((c) => ({ name: c.name, secure: c.secure, httpOnly: c.httpOnly, sameSite: c.sameSite })))}`);
    assert.equal(await page.isVisible('#ops'), false);
    const status = await hasupIn(ha.cluster.node(1), ['status', '--json', '--state-dir', ha.cluster.node(1).stateDir]);
    assert.equal(status.code, 0, status.stderr);
    const json = JSON.parse(status.stdout) as { ha_status: HaStatus; cluster: ClusterView };
    assert.equal(json.ha_status.status, await haWord(), 'the CLI and the page say the same');
    const rows = await page.$$eval('#members tbody tr', (trs) => trs.map((tr) => ({ id: tr.getAttribute('data-member'), cells: [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '') })));
    assert.deepEqual(rows.map((r) => r.id).sort(), json.cluster.members.filter((m) => m.state !== 'departed').map((m) => m.id).sort());
    const leader = json.cluster.service_groups.find((g) => g.service_group.startsWith('postgresql.'))!.leader!;
    for (const r of rows) {
      const m = json.cluster.members.find((x) => x.id === r.id)!;
      assert.equal(r.cells[2], m.state, `gossip state of ${r.id}`);
      assert.match(r.cells[4]!, r.id === leader ? /^leader/ : /^replica, streaming/, `PostgreSQL role of ${r.id}`);
    }
    await shot('1-viewer-ok');
  });

  test('kill -9 of a follower\'s hasup: DEGRADED naming it within 5 s; OK again after it returns', async () => {
    const leaderId = (await ha.view(1)).leader;
    const victim = [2, 3].find((i) => ids.get(i) !== leaderId)!;
    const killed = Date.now();
    process.kill(ha.member(victim).pid, 'SIGKILL');
    await page.waitForFunction((id) => document.querySelector('.ha-word')?.textContent === 'DEGRADED' && document.querySelector(`.reasons li[data-member="${id}"]`) !== null, ids.get(victim), { timeout: 5000 });
    console.log(`# node ${victim}'s hasup killed: DEGRADED naming it on the page after ${Date.now() - killed} ms`);
    await shot('2-follower-killed');
    ha.startNode(victim);
    await page.waitForFunction(() => document.querySelector('.ha-word')?.textContent === 'OK', undefined, { timeout: 120_000 });
    console.log(`# node ${victim} back: OK on the page ${Date.now() - killed} ms after the kill`);
    await shot('3-ok-again');
  });

  test('charts have data for each member; a line written into PostgreSQL\'s log is found by the search', async () => {
    await eventually(
      async () => {
        const chart = await pageGet<{ series: { member: string; values: (number | null)[] }[] }>('/ui/charts?name=cpu&range=15m');
        const withData = chart.series.filter((s) => s.values.some((v) => v !== null)).map((s) => s.member);
        // Elasticsearch's own samples start once its node answers the collector (later than the host's).
        const heap = await pageGet<{ series: { values: (number | null)[] }[] }>('/ui/charts?name=es_heap&range=15m');
        return [1, 2, 3].every((i) => withData.includes(ids.get(i)!)) && heap.series.some((s) => s.values.some((v) => v !== null)) ? true : undefined;
      },
      60_000,
      "CPU data from every member, and Elasticsearch's",
      2000,
    );
    await page.selectOption('#chart-range', '15m');
    await page.waitForFunction(() => document.querySelectorAll('#charts canvas').length >= 10, undefined, { timeout: 30_000 }).catch(async (err: unknown) => {
      // Which charts drew nothing, and what they say instead (loading, no data, an error).
      const panels = await page.$$eval('#charts .chart', (els) => els.filter((e) => !e.querySelector('canvas')).map((e) => e.textContent?.trim()));
      await shot('4-charts-missing');
      throw new Error(`${(err as Error).message}; charts without a plot: ${JSON.stringify(panels)}`);
    });
    const marker = `console-test-${Date.now().toString(36)}`;
    const leader = await ha.soleLeader(10_000);
    await ha.sql(leader, `DO $$ BEGIN RAISE LOG '${marker}'; END $$`);
    await page.fill('#log-text', marker);
    await page.selectOption('#log-range', '15m');
    // Shipped within a second or two; searchable after the index's refresh (5 s).
    const found = await eventually(
      async () => {
        await page.click('#log-form button[type=submit]');
        await page.waitForFunction(() => /matching lines|Elasticsearch/.test(document.getElementById('log-status')?.textContent ?? ''));
        const messages = await page.locator('#logs td.msg').allTextContents();
        return messages.some((m) => m.includes(marker)) ? true : undefined;
      },
      60_000,
      `the PostgreSQL log line ${marker} in the search`,
      2000,
    );
    console.log(`# the log line was found after ${found.ms} ms`);
    await shot('4-charts-and-logs');
  });

  test('a narrow screen', async () => {
    const narrow = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, ignoreHTTPSErrors: true });
    try {
      await login(narrow, ha.secrets.viewer_token!);
      await narrow.waitForFunction(() => document.querySelector('.ha-word') !== null);
      const overflow = await narrow.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `the page is ${overflow} px wider than the screen`);
      await narrow.screenshot({ path: join(SHOTS, '5-narrow-top.png') });
      await narrow.evaluate(() => document.getElementById('members')?.scrollIntoView({ block: 'start' }));
      await narrow.screenshot({ path: join(SHOTS, '5-narrow-members.png') });
    } finally {
      await narrow.close();
    }
  });

  test('as operator: a switchover from the page moves the leader; a request without the CSRF token is refused', async () => {
    await page.click('#logout');
    await login(page, ha.secrets.api_token);
    await page.waitForSelector('#ops:not([hidden])');
    const from = await ha.soleLeader(10_000);
    const target = [1, 2, 3].find((i) => i !== from)!;
    await page.waitForFunction((id) => [...(document.getElementById('switch-to') as HTMLSelectElement).options].some((o) => o.value === id), ids.get(target));
    await page.selectOption('#switch-to', ids.get(target)!);
    await page.click('#switchover');
    await page.waitForSelector('#confirm[open]');
    await shot('6-switchover-confirm');
    await page.click('#confirm-ok');
    await page.waitForFunction(() => /Leadership moved|failed/.test(document.getElementById('ops-result')?.textContent ?? ''), undefined, { timeout: 60_000 });
    assert.match((await page.textContent('#ops-result')) ?? '', /Leadership moved/);
    assert.equal(await ha.soleLeader(30_000, from), target);
    await page.waitForFunction((id) => document.querySelector(`#members tr[data-member="${id}"]`)?.textContent?.includes('leader'), ids.get(target), { timeout: 15_000 });
    await shot('7-after-switchover');

    const refused = await page.evaluate(async () => (await fetch('/pause', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status);
    assert.equal(refused, 403, 'the session cookie alone does not pause the cluster');
    assert.equal((await ha.view(1)).paused, false);
  });
});
