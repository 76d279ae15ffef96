/**
 * The console in a real browser (Debian's Chromium, driven by
 * playwright-core) against the member API in this process
 * (test/support/console-fixture.ts, a fake Elasticsearch beside it): login
 * as viewer and operator, the indicator following a member's death and
 * return, the members table, charts and log search, a switchover from the
 * page, the CSRF refusal, Elasticsearch down in its panels only, a lost
 * event stream. Screenshots of each state at 1280x800 and 390x844 go to
 * test-artifacts/console/ (ignored by git): look at them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { FakeConsoleEs, MEMBERS, OPERATOR_TOKEN, startConsoleServer, VIEWER_TOKEN, type ConsoleServer } from '../support/console-fixture.js';

export const CHROMIUM = '/usr/bin/chromium';
export const SHOTS = join('test-artifacts', 'console');

const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (scripts/bootstrap.sh installs Debian's chromium)`;

describe('the console in Chromium, against an API in this process', { skip }, () => {
  let browser: Browser;
  let server: ConsoleServer;
  let es: FakeConsoleEs;
  let page: Page;

  const shot = async (name: string, p: Page = page) => {
    mkdirSync(SHOTS, { recursive: true });
    await p.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  };

  async function login(p: Page, token: string): Promise<void> {
    await p.goto(`${server.url}/ui`);
    await p.fill('#token', token);
    await p.click('#login-form button[type=submit]');
    await p.waitForSelector('#console:not([hidden])');
    await p.waitForSelector('#members tbody tr');
  }

  const haWord = (p: Page = page) => p.textContent('.ha-word');

  before(async () => {
    es = new FakeConsoleEs();
    await es.start();
    server = await startConsoleServer({ es });
    // Root runs Chromium without its sandbox (it refuses to start otherwise).
    browser = await chromium.launch({ executablePath: CHROMIUM, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('pageerror', (err) => assert.fail(`script error on the page: ${err.message}`));
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    await es?.close();
  });

  test('login page, then the viewer: OK, three members, charts drawn, logs listed, no operations', async () => {
    await page.goto(`${server.url}/ui`);
    await page.waitForSelector('#login:not([hidden])');
    await shot('1-login');
    await page.fill('#token', 'wrong');
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('login-error')?.textContent?.includes('wrong token'));

    await login(page, VIEWER_TOKEN);
    await page.waitForFunction(() => document.querySelector('.ha-word')?.textContent === 'OK');
    assert.equal(await page.locator('#members tbody tr').count(), 3);
    assert.equal(await page.isVisible('#ops'), false, 'a viewer sees no operations');
    assert.match((await page.textContent('#who')) ?? '', /viewer/);
    await page.waitForSelector('#conn.live');
    await page.waitForFunction(() => document.querySelectorAll('#charts canvas').length >= 10, undefined, { timeout: 10_000 });
    await page.waitForSelector('#logs tbody tr');
    assert.ok((await page.locator('#marks li').count()) >= 1, 'the failover mark is listed');
    await shot('2-viewer-ok');
  });

  test('a follower dies: DEGRADED naming it within 2 s, without a reload; OK again when it returns', async () => {
    const started = Date.now();
    server.cluster.setState(MEMBERS[2], 'dead');
    await page.waitForFunction(() => document.querySelector('.ha-word')?.textContent === 'DEGRADED', undefined, { timeout: 5000 });
    const took = Date.now() - started;
    assert.ok(took < 2000, `${took} ms to the screen`);
    assert.ok(await page.isVisible(`.reasons li[data-code=member_dead][data-member="${MEMBERS[2]}"]`));
    await page.waitForFunction((id) => document.querySelector(`#members tr[data-member="${id}"] .pill.bad`) !== null, MEMBERS[2]);
    await shot('3-degraded');
    server.cluster.setState(MEMBERS[2], 'alive');
    await page.waitForFunction(() => document.querySelector('.ha-word')?.textContent === 'OK', undefined, { timeout: 5000 });
  });

  test('log search by text and member; a failover mark leads to the logs around it', async () => {
    await page.fill('#log-text', 'line 7');
    await page.selectOption('#log-member', MEMBERS[1]);
    await page.click('#log-form button[type=submit]');
    await page.waitForFunction(() => /matching lines/.test(document.getElementById('log-status')?.textContent ?? ''));
    const messages = await page.locator('#logs td.msg').allTextContents();
    assert.ok(messages.length > 0 && messages.every((m) => m.includes('line 7')), messages.join(' | '));
    await page.click('#marks button.link');
    await page.waitForFunction(() => /between/.test(document.getElementById('log-status')?.textContent ?? ''));
    await page.fill('#log-text', '');
    await page.selectOption('#log-member', '');
  });

  test('Elasticsearch refusing or down: each chart panel and the log panel say so, the rest keeps working', async () => {
    es.mode = 'unavailable';
    await page.click('#chart-refresh');
    await page.waitForFunction(() => document.querySelectorAll('#charts .chart .error').length >= 10);
    assert.match((await page.textContent('#charts .chart .error')) ?? '', /Elasticsearch is unavailable/);
    await page.click('#log-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('log-status')?.className === 'error');
    assert.equal(await haWord(), 'OK', 'the indicator does not depend on Elasticsearch');
    await shot('4-es-down');
    es.mode = 'ok';
    await page.click('#chart-refresh');
    await page.waitForFunction(() => document.querySelectorAll('#charts canvas').length >= 10);
  });

  test('a narrow screen: the page reads top to bottom', async () => {
    const narrow = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
    try {
      await login(narrow, VIEWER_TOKEN);
      narrow.on('pageerror', (err) => assert.fail(`script error on the page: ${err.message}`));
      await narrow.waitForFunction(() => document.querySelectorAll('#charts canvas').length >= 10, undefined, { timeout: 15_000 });
      const overflow = await narrow.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `the page is ${overflow} px wider than the screen`);
      // One screen at a time: a full page this narrow is too long to read as one picture.
      mkdirSync(SHOTS, { recursive: true });
      for (const [name, selector] of [['top', 'header'], ['members', '#members'], ['charts', '#charts'], ['logs', '#log-form']] as const) {
        await narrow.locator(selector).scrollIntoViewIfNeeded();
        await narrow.evaluate((sel) => document.querySelector(sel)?.scrollIntoView({ block: 'start' }), selector);
        await narrow.screenshot({ path: join(SHOTS, `5-narrow-${name}.png`) });
      }
    } finally {
      await narrow.close();
    }
  });

  test('the operator: operations shown; a switchover from the page after its confirmation; a request without the CSRF token refused', async () => {
    await page.click('#logout');
    await page.waitForSelector('#login:not([hidden])');
    await login(page, OPERATOR_TOKEN);
    await page.waitForSelector('#ops:not([hidden])');
    await page.waitForFunction(() => (document.getElementById('switch-to') as HTMLSelectElement).options.length === 2);
    await page.selectOption('#switch-to', MEMBERS[1]);
    await page.click('#switchover');
    await page.waitForSelector('#confirm[open]');
    assert.match((await page.textContent('#confirm-text')) ?? '', new RegExp(`hands leadership to ${MEMBERS[1].slice(0, 8)}`));
    await shot('6-operator-confirm');
    await page.click('#confirm-ok');
    await page.waitForFunction(() => /Leadership moved/.test(document.getElementById('ops-result')?.textContent ?? ''));
    assert.equal(server.cluster.leader, MEMBERS[1]);
    await page.waitForFunction((id) => document.querySelector(`#members tr[data-member="${id}"]`)?.textContent?.includes('leader'), MEMBERS[1]);
    await shot('7-operator-after-switchover');

    const refused = await page.evaluate(async () => (await fetch('/pause', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status);
    assert.equal(refused, 403, 'the session cookie alone does not act');
    assert.equal(server.cluster.paused, false);
  });

  test('the event stream lost: the page says so and retries', async () => {
    await server.close();
    await page.waitForSelector('#conn.lost', { timeout: 5000 });
    assert.match((await page.textContent('#conn')) ?? '', /connection lost; retrying in \d+ s/);
    await shot('8-connection-lost');
  });
});
