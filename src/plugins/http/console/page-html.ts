/**
 * The console's page shell and stylesheet. The page is one static document:
 * everything in it comes from its modules (page/main.ts) and the API, so
 * the shell carries no data, no secret and no inline script (the Content
 * Security Policy allows none). System fonts only: nothing is fetched from
 * outside the members.
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hasup console</title>
<link rel="stylesheet" href="/ui/assets/uplot.css">
<link rel="stylesheet" href="/ui/assets/console.css">
<script type="module" src="/ui/assets/main.js"></script>
</head>
<body>
<header class="bar">
  <span class="brand">hasup</span>
  <span id="where" class="where"></span>
  <span id="conn" class="conn" hidden></span>
  <span class="spacer"></span>
  <span id="who" class="who"></span>
  <button id="logout" type="button" hidden>Log out</button>
</header>
<main>
  <section id="login" class="login" hidden>
    <h1>Log in to the hasup console</h1>
    <p>Paste the viewer token (read only) or the operator token from the cluster's secrets file.</p>
    <form id="login-form" autocomplete="off">
      <label for="token">Token</label>
      <input id="token" name="token" type="password" required maxlength="512" spellcheck="false">
      <button type="submit">Log in</button>
      <p id="login-error" class="error" role="alert"></p>
    </form>
  </section>
  <div id="console" hidden>
    <section id="ha" class="ha" aria-live="polite"><p class="muted">Loading the HA status…</p></section>
    <section>
      <h2>Members</h2>
      <div class="scroll"><table id="members" class="members"></table></div>
      <p id="members-error" class="error" role="alert"></p>
    </section>
    <section id="ops" hidden>
      <h2>Operations</h2>
      <div class="ops">
        <div class="op"><label for="switch-to">Switchover to</label> <select id="switch-to"></select> <button id="switchover" type="button">Switch over…</button></div>
        <div class="op"><span id="pause-state"></span> <button id="pause" type="button">Pause failover…</button> <button id="resume" type="button">Resume failover…</button></div>
        <div class="op"><label for="restart-svc">Restart on this member</label> <select id="restart-svc"></select> <button id="restart" type="button">Restart…</button></div>
      </div>
      <p id="ops-result" class="result" role="status"></p>
    </section>
    <section>
      <h2>Charts</h2>
      <div class="controls">
        <label>Range <select id="chart-range"><option>15m</option><option selected>1h</option><option>6h</option><option>24h</option><option>7d</option></select></label>
        <label>Member <select id="chart-member"><option value="">all members</option></select></label>
        <button id="chart-refresh" type="button">Refresh</button>
        <span class="legend"><span class="mark-failover">▮</span> failover <span class="mark-restart">▮</span> service failed</span>
      </div>
      <p id="charts-error" class="error" role="alert"></p>
      <div id="charts" class="charts"></div>
      <div id="marks" class="marks"></div>
    </section>
    <section>
      <h2>Logs</h2>
      <form id="log-form" class="controls">
        <input id="log-text" type="search" placeholder="search text" maxlength="500">
        <select id="log-member"><option value="">all members</option></select>
        <select id="log-service"><option value="">all services</option><option>postgresql</option><option>etcd</option><option>elasticsearch</option><option>hasup</option></select>
        <select id="log-level"><option value="">any level</option><option value="critical">critical+</option><option value="error">error+</option><option value="warning">warning+</option><option value="info">info+</option></select>
        <select id="log-range"><option>15m</option><option selected>1h</option><option>6h</option><option>24h</option><option>7d</option></select>
        <button type="submit">Search</button>
        <label class="tail"><input id="log-tail" type="checkbox"> live tail</label>
      </form>
      <p id="log-status" class="muted" role="status"></p>
      <div class="scroll logs"><table id="logs"></table></div>
    </section>
  </div>
</main>
<dialog id="confirm">
  <form method="dialog">
    <h3 id="confirm-title"></h3>
    <p id="confirm-text"></p>
    <div class="buttons"><button value="cancel" type="submit">Cancel</button> <button id="confirm-ok" value="ok" type="submit" class="danger">Confirm</button></div>
  </form>
</dialog>
</body>
</html>
`;

export const PAGE_CSS = `
:root { --ok: #13753a; --warn: #a15c00; --crit: #b42318; --ink: #1d2433; --muted: #5b6474; --line: #dde1e8; --bg: #f5f6f8; --card: #fff; --accent: #2251c6; }
* { box-sizing: border-box; }
html { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: var(--bg); }
body { margin: 0; }
[hidden] { display: none !important; }
.bar { display: flex; align-items: center; gap: 12px; padding: 8px 16px; background: #1d2433; color: #e8ebf1; flex-wrap: wrap; }
.brand { font-weight: 700; letter-spacing: .02em; }
.where { color: #aab3c2; font-family: ui-monospace, monospace; font-size: 12px; }
.spacer { flex: 1; }
.conn { padding: 2px 8px; border-radius: 10px; font-size: 12px; background: #3a4357; }
.conn.lost { background: var(--crit); color: #fff; }
.conn.live { background: #24523a; }
.who { font-size: 13px; }
.bar button { background: transparent; color: #e8ebf1; border: 1px solid #56607a; }
main { max-width: 1400px; margin: 0 auto; padding: 16px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin-bottom: 16px; }
h1 { font-size: 20px; margin: 0 0 8px; }
h2 { font-size: 15px; margin: 0 0 10px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
button, select, input { font: inherit; }
button { padding: 5px 12px; border-radius: 6px; border: 1px solid #b9c0cc; background: #fff; color: var(--ink); cursor: pointer; }
button:hover { border-color: var(--accent); }
button.danger { background: var(--crit); border-color: var(--crit); color: #fff; }
button:disabled { opacity: .5; cursor: default; }
select, input[type=search], input[type=password] { padding: 5px 8px; border: 1px solid #b9c0cc; border-radius: 6px; background: #fff; max-width: 100%; }
.muted { color: var(--muted); }
.error { color: var(--crit); margin: 6px 0 0; }
.error:empty, .result:empty { display: none; }
.result { margin: 8px 0 0; }
.login { max-width: 460px; margin: 40px auto; }
.login form { display: grid; gap: 8px; }
.ha { border-width: 2px; }
.ha.ok { border-color: var(--ok); }
.ha.degraded { border-color: var(--warn); }
.ha.critical { border-color: var(--crit); }
.ha-head { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; }
.ha-word { font-size: 28px; font-weight: 800; letter-spacing: .04em; }
.ok .ha-word { color: var(--ok); }
.degraded .ha-word { color: var(--warn); }
.critical .ha-word { color: var(--crit); }
.reasons { list-style: none; padding: 0; margin: 10px 0 0; }
.reasons li { display: grid; grid-template-columns: 86px 1fr auto; gap: 10px; padding: 6px 0; border-top: 1px solid var(--line); align-items: baseline; }
.sev { font-size: 11px; font-weight: 700; text-transform: uppercase; padding: 1px 6px; border-radius: 4px; text-align: center; color: #fff; }
.sev.critical { background: var(--crit); }
.sev.warning { background: var(--warn); }
.since { color: var(--muted); font-size: 12px; white-space: nowrap; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; white-space: nowrap; }
.members td { white-space: nowrap; }
.members td:last-child { white-space: normal; min-width: 250px; }
.members th, .members td { padding: 5px 6px; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.pill { display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 12px; background: #eef0f4; }
.pill.good { background: #dff3e6; color: #0d5a2b; }
.pill.bad { background: #fde4e1; color: #8e1a10; }
.pill.warn { background: #fdf0d9; color: #7a4500; }
.svc { display: block; font-size: 12px; white-space: nowrap; }
.svc b { font-weight: 600; }
tr.stale td:nth-child(n+5) { opacity: .55; }
.ops { display: grid; gap: 10px; }
.op { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.controls { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin-bottom: 10px; }
.legend { color: var(--muted); font-size: 12px; }
.mark-failover { color: var(--crit); }
.mark-restart { color: var(--warn); }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 14px; }
.chart { border: 1px solid var(--line); border-radius: 6px; padding: 8px; min-height: 230px; }
.chart h3 { font-size: 13px; margin: 0 0 4px; }
.chart .error, .chart .muted { font-size: 12px; }
.logs { max-height: 480px; overflow-y: auto; }
.logs td { font-size: 12px; }
.logs td.msg { font-family: ui-monospace, monospace; white-space: pre-wrap; word-break: break-word; }
.lvl-error, .lvl-critical, .lvl-alert, .lvl-emergency { color: var(--crit); font-weight: 600; }
.lvl-warning { color: var(--warn); font-weight: 600; }
.marks ul { list-style: none; padding: 0; margin: 10px 0 0; font-size: 12px; }
.marks li { padding: 2px 0; }
button.link { border: none; background: none; color: var(--accent); padding: 0; text-decoration: underline; font-size: 12px; }
.tail { display: inline-flex; gap: 4px; align-items: center; }
dialog { border: 1px solid var(--line); border-radius: 8px; max-width: 520px; padding: 18px; }
dialog::backdrop { background: rgba(20, 25, 35, .45); }
dialog h3 { margin: 0 0 8px; }
dialog .buttons { display: flex; justify-content: flex-end; gap: 8px; margin-top: 16px; }
@media (max-width: 700px) {
  main { padding: 8px; }
  section { padding: 10px; }
  .charts { grid-template-columns: 1fr; }
  .reasons li { grid-template-columns: 1fr; gap: 2px; }
  .sev { justify-self: start; }
  .ha-word { font-size: 24px; }
  /* Tables become cards: a row per block, each cell labelled. */
  .members thead { display: none; }
  .members tr { display: block; border-bottom: 2px solid var(--line); padding: 6px 0; }
  .members td { display: flex; gap: 10px; border: none; padding: 2px 0; white-space: normal; }
  .members td::before { content: attr(data-label); flex: 0 0 96px; color: var(--muted); font-size: 12px; }
  .members td:last-child { display: block; }
  .members td:last-child::before { display: block; }
  .logs thead { display: none; }
  .logs tr { display: grid; grid-template-columns: auto auto 1fr auto; gap: 0 8px; border-bottom: 1px solid var(--line); padding: 4px 0; }
  .logs td { border: none; padding: 0; }
  .logs td.msg { grid-column: 1 / -1; }
  .controls select, .controls input[type=search] { flex: 1 1 140px; }
}
`;
