/* Downloader dashboard: polls the read-only JSON endpoints of every API host (own origin,
 * or the base URLs in window.Hosts from the optional /hosts.js, which the binary never
 * serves: a proxy in front adds it, see docs/operations.md "Dashboard"), merges them and
 * renders the panels. Vanilla JS, no dependencies. */
'use strict';
(function () {
  const EVERY_MS = 3000;
  const TIMEOUT_MS = 4000;
  const bases = (Array.isArray(window.Hosts) && window.Hosts.length ? window.Hosts : [''])
    .map((b) => String(b).replace(/\/+$/, ''));
  const $ = (sel) => document.querySelector(sel);
  const retried = {}; /* job id -> note shown in its row until it leaves the list */
  let last = null;

  /* ---------- small helpers ---------- */

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v);
    }
    for (const kid of kids.flat()) {
      if (kid !== undefined && kid !== null && kid !== false) e.append(kid instanceof Node ? kid : String(kid));
    }
    return e;
  }

  function fillBody(table, rows, cols, empty) {
    const tb = table.tBodies[0];
    tb.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { class: 'empty', colspan: cols }, empty))]));
  }

  const hostName = (b) => (b ? b.replace(/^[a-z]+:\/\//i, '') : location.host);
  const num = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : n === undefined ? '' : String(n));
  const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });
  const stamp = (ms) => (ms > 0 ? new Date(ms).toLocaleString([], { hour12: false }) : '');

  function dur(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
    return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
  }

  function ago(ms) {
    return ms < 10000 ? (Math.max(0, ms) / 1000).toFixed(1) + ' s ago' : dur(ms) + ' ago';
  }

  function bytes(n) {
    if (n < 1024) return n + ' B';
    const u = ['KB', 'MB', 'GB', 'TB'];
    let i = -1;
    do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
    return n.toFixed(n < 10 ? 1 : 0) + ' ' + u[i];
  }

  /* ---------- API token (api.auth_token) ---------- */

  /* With auth on, the page asks for the token when a call gets 401, keeps it in
   * sessionStorage (this tab only) and sends it to its own origin. Concurrent 401s share
   * one dialog; after a Cancel, background refreshes stop asking (actions still do). */
  const TOKEN_KEY = 'downloader.api_token';
  let tokenAsk = null, tokenDeclined = false;
  const sameOrigin = (base) => !base || new URL(base, location.href).origin === location.origin;

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }

  function authHeaders(base) {
    const t = token();
    return t && sameOrigin(base) ? { Authorization: 'Bearer ' + t } : {};
  }

  function showTokenState() {
    $('#token-state').hidden = !token();
  }

  function askToken(why) {
    if (tokenAsk) return tokenAsk;
    const d = $('#token-dialog');
    $('#token-why').textContent = why;
    $('#token-input').value = '';
    tokenAsk = new Promise((resolve) => {
      d.addEventListener('close', () => {
        const v = $('#token-input').value.trim();
        const ok = d.returnValue === 'ok' && v !== '';
        if (ok) sessionStorage.setItem(TOKEN_KEY, v);
        tokenDeclined = !ok;
        tokenAsk = null;
        showTokenState();
        resolve(ok);
      }, { once: true });
    });
    d.returnValue = '';
    d.showModal();
    return tokenAsk;
  }

  /* A 401: forgets a refused token and asks for one (quiet: not after a Cancel).
   * Resolves true when a new token was entered. */
  function unauthorized(quiet) {
    const had = token();
    if (had) sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
    if (quiet && tokenDeclined && !tokenAsk) return Promise.resolve(false);
    return askToken(had ? 'The API refused the token (401 Unauthorized): enter the right one.'
      : 'The API needs its token for this (401 Unauthorized).');
  }

  /* An operator call to the page's own origin (opts.base: another same-origin base):
   * JSON in and out, the token when known. Rejects with an Error whose message says what
   * the API answered. Other hosts of window.Hosts are only watched: browsers would
   * need CORS preflights for these calls, which the API does not answer. */
  async function call(method, path, body, opts) {
    const base = opts && opts.base !== undefined ? opts.base : '';
    for (let attempt = 0; ; attempt++) {
      const headers = Object.assign(body === undefined ? {} : { 'Content-Type': 'application/json' }, authHeaders(base));
      let r;
      try {
        r = await fetch(base + path, { method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
      } catch (e) {
        throw new Error('API unreachable (' + e.message + ')');
      }
      if (r.status === 401 && sameOrigin(base)) {
        if (attempt < 3 && await unauthorized(opts && opts.quiet)) continue;
        throw Object.assign(new Error('401 Unauthorized: this needs the API token'), { status: 401 });
      }
      const text = await r.text();
      if (!r.ok) throw Object.assign(new Error('HTTP ' + r.status + (text.trim() ? ': ' + text.trim() : '')), { status: r.status });
      return text ? JSON.parse(text) : null;
    }
  }

  /* ---------- fetching ---------- */

  /* Resolves to parsed JSON (null for 404 when allow404), or rejects with
   * {kind: 'redis' | 'http' | 'net', msg}. The API answers 503 with text when Redis is away. */
  async function getJSON(base, path, allow404) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    let r;
    try {
      r = await fetch(base + path, { cache: 'no-store', signal: ctl.signal, headers: authHeaders(base) });
    } catch (e) {
      throw { kind: 'net', msg: 'API unreachable (' + (e.name === 'AbortError' ? 'timeout' : e.message) + ')' };
    } finally {
      clearTimeout(timer);
    }
    if (r.status === 404 && allow404) return null;
    if (r.status === 401) {
      if (sameOrigin(base)) unauthorized(true).then((ok) => ok && tick(true));
      throw { kind: 'auth', msg: 'HTTP 401: the API token is missing or wrong' };
    }
    if (!r.ok) {
      const text = (await r.text().catch(() => '')).trim();
      throw { kind: r.status === 503 ? 'redis' : 'http', msg: 'HTTP ' + r.status + (text ? ': ' + text : '') };
    }
    return r.json();
  }

  async function pollHost(base) {
    const want = {
      aggrs: ['/dashboard/aggregations'],
      inst: ['/dashboard/instances'],
      hist: ['/dashboard/history'],
      retrying: ['/dashboard/retrying'],
      proc: ['/stats/processor', true],
      notif: ['/stats/notifier', true],
    };
    const keys = Object.keys(want);
    const res = await Promise.allSettled(keys.map((k) => getJSON(base, ...want[k])));
    const out = { base, data: {}, error: null };
    res.forEach((r, i) => {
      if (r.status === 'fulfilled') out.data[keys[i]] = r.value;
      else if (!out.error || r.reason.kind === 'redis') out.error = r.reason;
    });
    return out;
  }

  /* ---------- merging hosts ---------- */

  /* Several API hosts in front of one Redis report the same data: identical answers
   * count once, with the list of hosts that gave them. */
  function unique(results, key) {
    const seen = new Map();
    for (const r of results) {
      const v = r.data[key];
      if (v === undefined || v === null) continue;
      const s = JSON.stringify(v);
      if (seen.has(s)) seen.get(s).hosts.push(hostName(r.base));
      else seen.set(s, { hosts: [hostName(r.base)], v });
    }
    return [...seen.values()];
  }

  function merge(results) {
    const m = { aggrs: [], inst: new Map(), retrying: { count: 0, list: [] }, hist: null,
      stats: { processor: {}, notifier: {} } };
    const aggrKeys = new Map();
    for (const { hosts, v } of unique(results, 'aggrs')) {
      for (const a of v) {
        const key = [a.id, a.limit, a.proxy, a.ready, a.delayed, a.inflight, a.rate, a.effective_limit, a.paused_until_ms].join('\u0000');
        if (aggrKeys.has(key)) { aggrKeys.get(key).hosts.push(...hosts); continue; }
        const row = Object.assign({ hosts: hosts.slice() }, a);
        aggrKeys.set(key, row);
        m.aggrs.push(row);
      }
    }
    m.aggrs.sort((x, y) => y.ready + y.delayed - (x.ready + x.delayed) || y.inflight - x.inflight || (x.id < y.id ? -1 : 1));
    for (const r of results) {
      const d = r.data.inst;
      for (const i of (d && d.instances) || []) {
        const info = i.info || {};
        const prev = m.inst.get(i.name);
        if (prev && prev.info.seen_ms >= info.seen_ms) continue;
        m.inst.set(i.name, { name: i.name, alive: i.alive, info, now: d.now_ms, base: r.base });
      }
    }
    /* hosts sharing one Redis give the same page (only now_ms differs): count it once */
    const pages = new Set();
    for (const r of results) {
      const d = r.data.retrying;
      if (!d) continue;
      const key = JSON.stringify([d.count, d.callbacks]);
      if (pages.has(key)) continue;
      pages.add(key);
      m.retrying.count += d.count;
      const skew = Date.now() - d.now_ms; /* shows next attempts on this browser's clock */
      for (const c of d.callbacks) m.retrying.list.push(Object.assign({ base: r.base, due: c.next_attempt_ms + skew }, c));
    }
    m.retrying.list.sort((a, b) => a.due - b.due);
    for (const { v } of unique(results, 'hist')) {
      if (!m.hist) { m.hist = JSON.parse(JSON.stringify(v)); continue; }
      const off = v.first_minute - m.hist.first_minute;
      for (const k of ['downloads_ok', 'downloads_failed', 'callbacks_ok', 'callbacks_failed']) {
        v[k].forEach((n, i) => { if (m.hist[k][i + off] !== undefined) m.hist[k][i + off] += n; });
      }
    }
    for (const [key, comp] of [['proc', 'processor'], ['notif', 'notifier']]) {
      for (const { v } of unique(results, key)) {
        for (const [k, n] of Object.entries(v)) m.stats[comp][k] = (m.stats[comp][k] || 0) + n;
      }
    }
    return m;
  }

  /* ---------- panels ---------- */

  function renderStatus(results) {
    $('#hosts').replaceChildren(...results.map((r) => {
      const st = r.error ? (r.error.kind === 'redis' ? 'Redis down' : 'unreachable') : 'ok';
      return el('li', { title: r.error ? r.error.msg : 'API and Redis reachable' },
        el('span', { class: 'dot ' + (r.error ? 'bad' : 'ok') }), hostName(r.base) + (r.error ? ' · ' + st : ''));
    }));
    const bad = results.filter((r) => r.error);
    const banner = $('#banner');
    banner.hidden = !bad.length;
    if (bad.length) {
      const redis = bad.some((r) => r.error.kind === 'redis');
      const auth = bad.some((r) => r.error.kind === 'auth');
      banner.replaceChildren(
        redis ? 'Redis unavailable: the downloader cannot read or queue anything right now.'
          : auth ? 'Unauthorized (401): the API needs its token.' : 'API unreachable: showing the last data received.',
        ...bad.map((r) => el('small', {}, hostName(r.base) + ' — ' + r.error.msg)));
    }
    $('#main').classList.toggle('stale', bad.length === results.length);
    $('#updated').textContent = (bad.length === results.length ? 'last good update ' : 'updated ') +
      (last ? clock(last) : 'never');
  }

  function renderCards(m, instances) {
    const alive = instances.filter((i) => i.alive).length;
    const sum = (k) => m.aggrs.reduce((s, a) => s + (a[k] || 0), 0);
    const hour = (k) => (m.hist ? m.hist[k].reduce((s, n) => s + n, 0) : 0);
    const failed = (k) => hour(k) > 0 && el('small', { class: 'bad' }, num(hour(k)) + ' failed');
    const cards = [
      ['Instances alive', alive + (alive < instances.length ? ' / ' + instances.length : ''), alive < instances.length],
      ['Aggregations', m.aggrs.length],
      ['Jobs ready', sum('ready')],
      ['Download retries waiting', sum('delayed')],
      ['Callbacks retrying', m.retrying.count, m.retrying.count > 0],
      ['Downloading now', sum('inflight')],
      ['Downloads · 1 h', hour('downloads_ok'), false, failed('downloads_failed')],
      ['Callbacks · 1 h', hour('callbacks_ok'), false, failed('callbacks_failed')],
    ];
    $('#cards').replaceChildren(...cards.map(([k, v, bad, extra]) =>
      el('div', { class: 'card' + (bad ? ' bad' : '') }, el('div', { class: 'v' }, num(v), extra), el('div', { class: 'k' }, k))));
  }

  function renderInstances(instances) {
    const order = { api: 0, processor: 1, notifier: 2 };
    instances.sort((a, b) => (order[a.info.component] ?? 9) - (order[b.info.component] ?? 9) || (a.name < b.name ? -1 : 1));
    const rows = instances.map((i) => {
      const f = i.info;
      return el('tr', { 'data-instance': i.name, class: i.alive ? 'alive' : 'dead', title: 'instance ' + f.instance },
        el('td', {}, el('span', { class: 'badge ' + f.component }, f.component)),
        el('td', {}, f.host),
        el('td', { class: 'num opt' }, f.pid),
        el('td', { class: 'mono opt nowrap' }, f.version),
        el('td', { class: 'num' }, f.started_ms ? dur((i.alive ? i.now : f.seen_ms) - f.started_ms) : ''),
        el('td', { class: 'num', title: f.seen_ms ? stamp(f.seen_ms) : '' }, f.seen_ms ? ago(i.now - f.seen_ms) : ''),
        el('td', {}, el('span', { class: 'pill ' + (i.alive ? 'ok' : 'bad') },
          el('span', { class: 'dot ' + (i.alive ? 'ok' : 'bad') }), i.alive ? 'alive' : 'dead')));
    });
    fillBody($('#instances'), rows, 7, 'No instance has reported yet');
    const alive = instances.filter((i) => i.alive).length;
    $('#inst-count').textContent = alive + ' alive' + (alive < instances.length ? ', ' + (instances.length - alive) + ' dead' : '');
  }

  function usage(n, limit) {
    const pct = limit > 0 ? Math.min(100, (100 * n) / limit) : 0;
    return el('span', { class: 'use', title: n + ' of ' + limit + ' slots in use' },
      el('span', { class: 'bar' + (n >= limit ? ' full' : '') }, el('i', { style: 'width:' + pct + '%' })),
      el('span', { class: 'n' }, n), el('span', { class: 'muted' }, '/' + limit));
  }

  /* Limit cell: the effective limit against the limit when origin pushback lowered it. */
  function limitCell(a) {
    const eff = a.effective_limit === undefined ? a.limit : a.effective_limit;
    if (eff >= a.limit) return String(a.limit);
    return el('span', { title: 'lowered to ' + eff + ' after origin pushback (adaptive limit), limit ' + a.limit },
      el('span', { class: 'n' }, eff), el('span', { class: 'muted' }, '/' + a.limit));
  }

  /* Aggregation cell: the id, with a badge while it is paused (429/503) or waits for its rate. */
  function aggrCell(a) {
    const kids = [a.id];
    if (a.paused_until_ms > 0) {
      const until = new Date(a.paused_until_ms).toLocaleTimeString();
      kids.push(' ', el('span', { class: 'badge paused', title: 'the origin answered 429/503: no new download starts until then' }, 'paused until ' + until));
    } else if (a.waiting === 'rate') {
      kids.push(' ', el('span', { class: 'badge rate', title: 'the next start waits for aggr_rate' }, 'rate'));
    }
    return kids;
  }

  function renderAggregations(m) {
    const q = $('#aggr-filter').value.trim().toLowerCase();
    const list = m.aggrs.filter((a) => !q || a.id.toLowerCase().includes(q) || (a.proxy || '').toLowerCase().includes(q));
    const rows = list.map((a) => el('tr', { 'data-aggr': a.id },
      el('td', { class: 'mono', title: a.name }, ...aggrCell(a)),
      el('td', { class: 'num c-limit opt', 'data-value': a.limit }, limitCell(a)),
      el('td', { class: 'num c-rate opt', 'data-value': a.rate || 0 }, a.rate > 0 ? a.rate + '/s' : '—'),
      el('td', { class: 'mono muted' }, a.proxy || '—'),
      el('td', { class: 'num c-ready' }, num(a.ready)),
      el('td', { class: 'num c-delayed' }, num(a.delayed)),
      el('td', { class: 'num c-inflight', 'data-value': a.inflight }, usage(a.inflight, a.limit)),
      el('td', { class: 'host-col muted' }, a.hosts.join(', '))));
    fillBody($('#aggregations'), rows, 8, q ? 'No aggregation matches the filter' : 'No aggregation has work right now');
    $('#aggr-count').textContent = q ? list.length + ' of ' + m.aggrs.length : m.aggrs.length ? String(m.aggrs.length) : '';
  }

  function renderInflight(instances) {
    let running = 0;
    const list = [];
    for (const i of instances) {
      if (!i.alive || i.info.component !== 'processor') continue;
      running += (i.info.gauges && i.info.gauges.workers) || 0;
      for (const d of i.info.inflight || []) list.push(Object.assign({ host: i.info.host, instance: i.info.instance }, d));
    }
    list.sort((a, b) => b.elapsed_ms - a.elapsed_ms);
    const items = list.map((d) => {
      const known = d.total >= 0;
      const pct = known && d.total > 0 ? Math.min(100, (100 * d.bytes) / d.total) : 0;
      return el('li', { 'data-job': d.id },
        el('div', { class: 'f-top' },
          el('span', { class: 'url', title: d.url + '\njob ' + d.id + ' on ' + d.instance }, d.url),
          el('span', { class: 'f-time', title: 'elapsed' }, dur(d.elapsed_ms))),
        el('div', { class: 'f-bot' },
          el('span', { class: 'tag', title: 'aggregation' }, d.aggr),
          el('span', { class: 'bar' + (known ? '' : ' unknown') }, el('i', { style: known ? 'width:' + pct.toFixed(1) + '%' : '' })),
          el('span', { class: 'f-bytes', title: d.kept > 0 ? bytes(d.kept) + ' kept from earlier attempts (resumed)' : '' },
            (known ? bytes(d.bytes) + ' of ' + bytes(d.total) + ' · ' + pct.toFixed(0) + '%' : bytes(d.bytes) + ' · size unknown') +
            (d.kept > 0 ? ' · resumed at ' + bytes(d.kept) : ''))));
    });
    $('#inflight').replaceChildren(...(items.length ? items : [el('li', { class: 'empty' }, 'Nothing is downloading right now')]));
    $('#inflight-count').textContent = running ? (list.length < running ? list.length + ' slowest of ' + running + ' running' : running + ' running') : '';
  }

  function renderStats(comp, total, instances) {
    const cols = instances.filter((i) => i.alive && i.info.component === comp);
    const value = (i, k) => {
      const f = i.info;
      if (k === 'alive') return 1;
      return f.counters && k in f.counters ? f.counters[k] : f.gauges && k in f.gauges ? f.gauges[k] : undefined;
    };
    const keys = new Set(Object.keys(total));
    for (const i of cols) for (const k of Object.keys(Object.assign({}, i.info.counters, i.info.gauges))) keys.add(k);
    const table = $('#stats-' + comp);
    table.tHead.replaceChildren(el('tr', {}, el('th', {}, 'Counter'),
      el('th', { class: 'num', title: 'all instances (counters accumulate across restarts)' }, 'Total'),
      cols.map((i) => el('th', { class: 'num', title: i.info.instance }, i.info.host + ':' + i.info.pid))));
    const rows = [...keys].sort().map((k) => el('tr', { 'data-key': k }, el('td', {}, k),
      el('td', { class: 'num total' }, num(total[k])),
      cols.map((i) => el('td', { class: 'num' }, num(value(i, k))))));
    fillBody(table, rows, cols.length + 2, 'No stats found');
  }

  function renderRetrying(m) {
    const now = Date.now();
    const rows = m.retrying.list.map((c) => el('tr', { 'data-job': c.id },
      el('td', {}, el('button', { class: 'linkish', type: 'button', title: c.url, onclick: () => lookup(c.id) }, c.id),
        el('div', { class: 'url muted', title: c.url }, c.url)),
      el('td', { class: 'mono' }, c.aggr_id),
      el('td', { class: 'num' }, num(c.attempts)),
      el('td', { class: 'err' }, c.last_error || '—'),
      el('td', { class: 'num', title: stamp(c.due) }, c.due > now ? 'in ' + dur(c.due - now) : 'due now')));
    fillBody($('#retrying'), rows, 5, 'No callbacks waiting to be retried');
    const shown = m.retrying.list.length, total = m.retrying.count;
    $('#retrying-count').textContent = total ? (shown < total ? shown + ' of ' + num(total) : String(total)) : '';
  }

  /* A bar chart of ok (green) and failed (red) per minute, drawn as SVG to the panel width. */
  function chart(box, legend, ok, bad, first) {
    const W = Math.max(200, box.clientWidth || 600), H = 110, L = 34, B = 16, T = 6;
    const n = ok.length;
    const max = Math.max(1, ...ok.map((v, i) => v + bad[i]));
    const step = Math.pow(10, Math.floor(Math.log10(max)));
    const top = Math.ceil(max / step) * step;
    const y = (v) => T + (H - T - B) * (1 - v / top);
    const bw = (W - L) / n;
    const hhmm = (i) => new Date((first + i) * 60000).toTimeString().slice(0, 5);
    let s = '<svg viewBox="0 0 ' + W + ' ' + H + '" width="' + W + '" height="' + H + '" role="img">';
    for (const v of [0, top / 2, top]) {
      s += '<line class="grid" x1="' + L + '" x2="' + W + '" y1="' + y(v) + '" y2="' + y(v) + '"/>';
      s += '<text x="' + (L - 4) + '" y="' + (y(v) + 3) + '" text-anchor="end">' + (Number.isInteger(v) ? v : v.toFixed(1)) + '</text>';
    }
    for (let i = 0; i < n; i++) {
      const x = L + i * bw + 0.5, w = Math.max(1, bw - 1.5);
      const tip = '<title>' + hhmm(i) + ': ' + ok[i] + ' ok, ' + bad[i] + ' failed</title>';
      if (ok[i]) s += '<rect class="c-ok" x="' + x + '" y="' + y(ok[i]) + '" width="' + w + '" height="' + (y(0) - y(ok[i])) + '">' + tip + '</rect>';
      if (bad[i]) s += '<rect class="c-bad" x="' + x + '" y="' + y(ok[i] + bad[i]) + '" width="' + w + '" height="' + (y(ok[i]) - y(ok[i] + bad[i])) + '">' + tip + '</rect>';
    }
    for (const i of [0, Math.floor(n / 2), n - 1]) {
      s += '<text x="' + (L + i * bw + bw / 2) + '" y="' + (H - 3) + '" text-anchor="' + (i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle') + '">' + hhmm(i) + '</text>';
    }
    box.innerHTML = s + '</svg>';
    const total = (a) => a.reduce((t, v) => t + v, 0);
    legend.replaceChildren(el('span', {}, el('b', { class: 'c-ok' }), num(total(ok)) + ' ok'),
      el('span', {}, el('b', { class: 'c-bad' }), num(total(bad)) + ' failed'),
      el('span', {}, num(ok[n - 2] + bad[n - 2]) + ' last minute'));
  }

  function renderCharts(m) {
    if (!m.hist) return;
    const h = m.hist;
    chart($('#chart-dl'), $('#dl-legend'), h.downloads_ok, h.downloads_failed, h.first_minute);
    chart($('#chart-cb'), $('#cb-legend'), h.callbacks_ok, h.callbacks_failed, h.first_minute);
  }

  function render(results) {
    const ok = results.filter((r) => !r.error);
    if (ok.length) last = Date.now();
    renderStatus(results);
    if (!ok.length) return; /* keep the last data (or the placeholders), dimmed */
    const m = (render.model = merge(ok));
    const instances = [...m.inst.values()];
    renderCards(m, instances);
    renderInstances(instances);
    renderAggregations(m);
    renderInflight(instances);
    renderStats('processor', m.stats.processor, instances);
    renderStats('notifier', m.stats.notifier, instances);
    renderRetrying(m);
    renderCharts(m);
  }

  /* ---------- actions ---------- */

  async function retry(f, button) {
    button.disabled = true;
    button.textContent = 'Retrying…';
    const cross = f.base && new URL(f.base, location.href).origin !== location.origin;
    try {
      /* /retry sends no CORS header: for another host the answer cannot be read, the next
       * refresh shows whether the job left the list. */
      if (cross) await fetch(f.base + '/retry/' + encodeURIComponent(f.id), { method: 'POST', mode: 'no-cors' });
      else await call('POST', '/retry/' + encodeURIComponent(f.id), undefined, { base: f.base });
      retried[f.id] = 'Re-queued';
    } catch (e) {
      retried[f.id] = 'Retry failed: ' + e.message;
    }
    setTimeout(() => delete retried[f.id], 4 * EVERY_MS);
    loadDead(true);
    tick(true);
  }

  const FIELDS = [
    ['id', 'Id'], ['download_state', 'Download'], ['callback_state', 'Callback'], ['url', 'URL'],
    ['aggr_id', 'Aggregation'], ['download_attempts', 'Download attempts'], ['callback_attempts', 'Callback attempts'],
    ['response_code', 'HTTP status'], ['size', 'Size'], ['mime_type', 'MIME type'], ['image_size', 'Image size'],
    ['download_error', 'Download error'], ['last_error', 'Last error'], ['callback_error', 'Callback error'],
    ['lost_leases', 'Lost leases'], ['extra', 'Extra'], ['created_at_ms', 'Created'], ['updated_at_ms', 'Updated'],
    ['next_attempt_at_ms', 'Next attempt'], ['expires_in_ms', 'Expires in'], ['file_url', 'File'],
    /* history: the outcome as the callback reported it, kept notifier.history after delivery */
    ['success', 'Succeeded'], ['error', 'Outcome error'], ['delivered_at_ms', 'Delivered'],
  ];

  function show(v, k) {
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (k === 'size') return bytes(v);
    if (k.endsWith('_at_ms')) return stamp(v);
    if (k === 'expires_in_ms') return dur(v);
    if (k === 'file_url') return el('a', { href: v, target: '_blank', rel: 'noopener' }, v);
    return v;
  }

  async function lookup(id) {
    const out = $('#lookup-result');
    $('#lookup-id').value = id = id.trim();
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
      out.replaceChildren(el('div', { class: 'msg bad' }, 'A job id is 14 characters of A–Z, a–z, 0–9, "-" and "_".'));
      return;
    }
    out.replaceChildren(el('div', { class: 'msg' }, 'Looking up ' + id + '…'));
    let err = null, missing = 0;
    for (const base of bases) {
      try {
        const j = await getJSON(base, '/download/' + encodeURIComponent(id), true);
        if (!j) { missing++; continue; }
        const dl = el('dl', {});
        for (const [k, label] of FIELDS) {
          const v = j[k];
          if (v === '' || v === undefined || v === null || (v === 0 && k !== 'download_attempts') || (k === 'expires_in_ms' && v < 0)) continue;
          if (!historyField(j, k)) continue;
          dl.append(el('dt', {}, label), el('dd', {}, show(v, k)));
        }
        if (bases.length > 1) dl.append(el('dt', {}, 'Host'), el('dd', {}, hostName(base)));
        out.replaceChildren(dl);
        if (j.callback_state === 'Failed') {
          out.append(el('p', {}, el('button', { class: 'retry', type: 'button',
            onclick: (e) => retry({ id, base }, e.target).then(() => lookup(id)) }, 'Retry callback')));
        }
        if (cancellable(j)) out.append(cancelButton(id));
        return;
      } catch (e) {
        err = err || Object.assign({ base }, e);
      }
    }
    const note = err ? hostName(err.base) + ': ' + err.msg : '';
    out.replaceChildren(missing || !err
      ? el('div', { class: 'msg' }, 'Job ' + id + ' not found: unknown id, or its callback was delivered and it was removed.', note && el('small', { class: 'muted' }, ' (' + note + ')'))
      : el('div', { class: 'msg bad' }, note));
  }

  /* ---------- operator controls (issue 15): confirm, cancel ---------- */

  const PAGE = 20;

  /* An in-page yes/no question (a modal <dialog>); resolves true for yes. */
  function confirmDialog(text, yes) {
    const d = $('#confirm');
    $('#confirm-text').textContent = text;
    $('#confirm-yes').textContent = yes || 'Yes';
    d.returnValue = '';
    d.showModal();
    return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'yes'), { once: true }));
  }

  /* A message box of a panel: kind '' (info), 'ok' or 'bad'. */
  function say(box, text, kind) {
    box.hidden = !text;
    box.className = 'msg' + (kind ? ' ' + kind : '');
    box.textContent = text || '';
  }

  /* The outcome fields only once there is an outcome, and not twice. */
  const historyField = (j, k) => (k === 'success' ? ['Success', 'Failed'].includes(j.download_state)
    : k === 'error' ? j.error !== j.download_error : true);

  const cancellable = (j) => j.callback_state !== 'Delivered' && j.download_state !== 'Cancelled';

  /* Lookup: DELETE /download/<id> after a confirmation; then shows the job again. */
  function cancelButton(id) {
    const msg = el('div', { class: 'msg', hidden: true });
    const b = el('button', { id: 'lookup-cancel', class: 'danger', type: 'button', onclick: async () => {
      if (!(await confirmDialog('Cancel job ' + id + '? A running download is aborted and no callback is sent.', 'Cancel job'))) return;
      b.disabled = true;
      try {
        await call('DELETE', '/download/' + encodeURIComponent(id));
        await lookup(id);
        $('#lookup-result').prepend(el('div', { class: 'msg ok' }, 'Job ' + id + ' cancelled.'));
      } catch (e) {
        b.disabled = false;
        say(msg, 'Cancel failed: ' + e.message, 'bad');
      }
    } }, 'Cancel job');
    return el('p', {}, b, msg);
  }

  /* Cursor paging shared by the queue browser and the failed lists: the cursors of the
   * pages seen so far, so that "First page" and "Next page" need no counting. */
  function pager(prefix) {
    return { cursors: [''], at: 0, next: '', prefix };
  }

  /* The pager of the next page: a new object, so that an answer still on its way for
   * the page before is recognised as stale and dropped. */
  function nextPage(p) {
    return Object.assign(pager(p.prefix), { cursors: p.cursors.slice(0, p.at + 1).concat(p.next), at: p.at + 1 });
  }

  function renderPager(p) {
    $('#' + p.prefix + '-page').textContent = 'page ' + (p.at + 1);
    $('#' + p.prefix + '-first').disabled = p.at === 0;
    $('#' + p.prefix + '-next').disabled = !p.next;
  }

  function selectTab(tabs, attr, value) {
    for (const b of tabs.querySelectorAll('button')) b.setAttribute('aria-selected', String(b.dataset[attr] === value));
  }

  /* ---------- operator controls: one aggregation ---------- */

  /* The panel below the aggregation table: state, pause/resume, limit and rate, purge,
   * and a queue browser (ready, delayed, running), paged by the API's cursors. */
  const ag = { id: null, info: null, state: 'ready', page: pager('aggr'), dirty: false };
  const aggrPath = () => '/aggregations/' + encodeURIComponent(ag.id);
  const WHEN = { ready: ['Created', 'created_at_ms'], delayed: ['Next attempt', 'next_attempt_at_ms'], running: ['Started', 'started_at_ms'] };

  function renderAggrInfo(a) {
    ag.info = a;
    $('#aggr-id').textContent = a.id;
    $('#aggr-state').replaceChildren(el('span', { class: 'badge ' + (a.paused ? 'paused' : 'active') }, a.paused ? 'paused' : 'active'));
    $('#aggr-counts').textContent = num(a.ready) + ' ready · ' + num(a.delayed) + ' delayed · ' + num(a.inflight) + ' in flight · limit ' +
      a.limit + (a.rate ? ' · ' + a.rate + '/s' : '') + (a.proxy ? ' · proxy ' + a.proxy : '');
    $('#aggr-pause').textContent = a.paused ? 'Resume' : 'Pause';
    if (!ag.dirty) {
      $('#aggr-limit').value = a.limit;
      $('#aggr-rate').value = a.rate || 0;
    }
  }

  async function loadAggr(quiet) {
    if (!ag.id) return;
    const id = ag.id;
    try {
      const a = await call('GET', aggrPath(), undefined, { quiet });
      if (id === ag.id) renderAggrInfo(a);
    } catch (e) {
      if (id === ag.id) say($('#aggr-msg'), e.status === 404 ? 'Aggregation ' + id + ' is not known (nothing queued, and no settings kept).' : e.message, 'bad');
    }
  }

  async function loadAggrJobs(quiet) {
    if (!ag.id) return;
    const id = ag.id, state = ag.state, p = ag.page;
    const [label, key] = WHEN[state];
    $('#aggr-when').textContent = label;
    try {
      const r = await call('GET', aggrPath() + '/jobs?state=' + state + '&count=' + PAGE + '&cursor=' + encodeURIComponent(p.cursors[p.at]), undefined, { quiet });
      if (id !== ag.id || state !== ag.state || p !== ag.page) return;
      p.next = r.next_cursor || '';
      const rows = (r.jobs || []).map((j) => el('tr', { 'data-job': j.id },
        el('td', {}, el('button', { class: 'linkish', type: 'button', onclick: () => lookup(j.id) }, j.id)),
        el('td', { class: 'url', title: j.url }, j.url),
        el('td', { class: 'num' }, j.attempts),
        el('td', { class: 'num', title: stamp(j[key]) }, j[key] ? clock(j[key]) : ''),
        el('td', { class: 'err' }, j.last_error || '')));
      fillBody($('#aggr-jobs'), rows, 5, 'No ' + state + ' jobs');
      renderPager(p);
    } catch (e) {
      if (id === ag.id) fillBody($('#aggr-jobs'), [], 5, e.message);
    }
  }

  function openAggr(id) {
    const panel = $('#p-aggr');
    if (ag.id !== id) {
      Object.assign(ag, { id, info: null, state: 'ready', page: pager('aggr'), dirty: false });
      selectTab($('#aggr-tabs'), 'state', 'ready');
      say($('#aggr-msg'), '');
      $('#aggr-id').textContent = id;
      fillBody($('#aggr-jobs'), [], 5, 'Loading…');
    }
    panel.hidden = false;
    panel.scrollIntoView({ block: 'nearest' });
    loadAggr();
    loadAggrJobs();
  }

  async function patchAggr(body, done) {
    try {
      renderAggrInfo(await call('PATCH', aggrPath(), body));
      say($('#aggr-msg'), done, 'ok');
      tick(true);
    } catch (e) {
      say($('#aggr-msg'), e.message, 'bad');
    }
  }

  function wireAggr() {
    $('#aggregations tbody').addEventListener('click', (e) => {
      const tr = e.target.closest('tr[data-aggr]');
      if (tr && !e.target.closest('a, button')) openAggr(tr.dataset.aggr);
    });
    $('#aggr-close').addEventListener('click', () => { ag.id = null; $('#p-aggr').hidden = true; });
    $('#aggr-pause').addEventListener('click', () => ag.info &&
      patchAggr({ paused: !ag.info.paused }, ag.info.paused ? 'Resumed: new downloads start again.' : 'Paused: no new downloads start; running ones finish.'));
    for (const i of ['#aggr-limit', '#aggr-rate']) $(i).addEventListener('input', () => { ag.dirty = true; });
    $('#aggr-edit').addEventListener('submit', async (e) => {
      e.preventDefault();
      const limit = Number($('#aggr-limit').value), rate = Number($('#aggr-rate').value || 0);
      await patchAggr({ limit, rate }, 'Saved: limit ' + limit + ', rate ' + (rate ? rate + '/s' : 'none') + '.');
      ag.dirty = false;
    });
    $('#aggr-purge').addEventListener('click', async () => {
      const a = ag.info;
      if (!a || !(await confirmDialog('Purge the ' + num(a.ready + a.delayed) + ' queued and delayed jobs of ' + a.id +
        '? Running downloads finish; no callbacks are sent.', 'Purge'))) return;
      try {
        const r = await call('DELETE', aggrPath() + '/jobs');
        say($('#aggr-msg'), 'Purged ' + num(r.deleted) + ' jobs.', 'ok');
      } catch (e) {
        say($('#aggr-msg'), 'Purge failed: ' + e.message, 'bad');
      }
      ag.page = pager('aggr');
      loadAggr();
      loadAggrJobs();
      tick(true);
    });
    $('#aggr-tabs').addEventListener('click', (e) => {
      const b = e.target.closest('button[data-state]');
      if (!b || !ag.id) return;
      ag.state = b.dataset.state;
      ag.page = pager('aggr');
      selectTab($('#aggr-tabs'), 'state', ag.state);
      loadAggrJobs();
    });
    $('#aggr-next').addEventListener('click', () => { ag.page = nextPage(ag.page); loadAggrJobs(); });
    $('#aggr-first').addEventListener('click', () => { ag.page = pager('aggr'); loadAggrJobs(); });
  }

  /* ---------- operator controls: failed downloads and callbacks ---------- */

  /* GET /failed pages of failed callbacks and failed downloads; both can be re-queued,
   * one (its row's Retry), the selected ones or all (POST /failed/retry). With several
   * hosts (/hosts.js) a selector picks whose list is shown. */
  const dead = { kind: 'callback', base: bases[0], page: pager('dead'), selected: new Set() };

  async function loadDead(quiet) {
    const kind = dead.kind, base = dead.base, p = dead.page;
    try {
      const r = await call('GET', '/failed?kind=' + kind + '&count=' + PAGE + '&cursor=' + encodeURIComponent(p.cursors[p.at]), undefined, { quiet, base });
      if (kind !== dead.kind || base !== dead.base || p !== dead.page) return;
      p.next = r.next_cursor || '';
      const now = Date.now();
      const rows = (r.jobs || []).map((f) => el('tr', { 'data-job': f.id },
        el('td', {}, el('input', { type: 'checkbox', class: 'pick', value: f.id, 'aria-label': 'select ' + f.id,
          checked: dead.selected.has(f.id), onchange: (e) => { e.target.checked ? dead.selected.add(f.id) : dead.selected.delete(f.id); renderDeadOps(); } })),
        el('td', {}, el('button', { class: 'linkish', type: 'button', title: f.url, onclick: () => lookup(f.id) }, f.id),
          el('div', { class: 'url muted', title: f.url }, f.url)),
        el('td', { class: 'mono' }, f.aggr_id),
        el('td', { class: 'err' }, f.error || '—'),
        el('td', { class: 'num', title: stamp(f.failed_at_ms) }, f.failed_at_ms ? ago(now - f.failed_at_ms) : ''),
        el('td', { class: 'num' }, retried[f.id] ? el('span', { class: 'muted' }, retried[f.id])
          : el('button', { class: 'retry', type: 'button', onclick: (e) => retryDead([f.id], e.target) }, 'Retry'))));
      fillBody($('#dead'), rows, 6, kind === 'callback' ? 'No failed callbacks' : 'No failed downloads');
      $('#dead-count').textContent = rows.length ? (p.at || p.next ? 'page ' + (p.at + 1) : String(rows.length)) : '';
      renderPager(p);
    } catch (e) {
      if (kind === dead.kind && base === dead.base) fillBody($('#dead'), [], 6, e.message);
    }
    renderDeadOps();
  }

  function renderDeadOps() {
    $('#dead-retry-selected').disabled = !dead.selected.size;
    $('#dead-retry-selected').textContent = 'Retry selected' + (dead.selected.size ? ' (' + dead.selected.size + ')' : '');
    $('#dead-note').textContent = dead.kind === 'callback' ? ''
      : 'A retried download runs again as a new job: a failure callback not sent yet is dropped, the client gets the new outcome.';
  }

  /* Re-queues ids of the shown kind (null: all); button: a row's Retry. The API answers
   * no CORS preflight, so a retry on another host goes as a simple request without the
   * token (as the old per-row /retry did) and the next refresh shows what happened. */
  async function retryDead(ids, button) {
    const kind = dead.kind, base = dead.base, body = ids ? { kind, ids } : { kind };
    const row = button ? ids[0] : null;
    if (button) { button.disabled = true; button.textContent = 'Retrying…'; }
    try {
      let text;
      if (!sameOrigin(base)) {
        await fetch(base + '/failed/retry', { method: 'POST', mode: 'no-cors', body: JSON.stringify(body) });
        text = 'Sent to ' + hostName(base) + '; the list shows what was re-queued.';
        if (row) retried[row] = 'Sent';
      } else {
        const n = (await call('POST', '/failed/retry', body, { base })).requeued;
        text = 'Re-queued ' + num(n) + ' ' + kind + (n === 1 ? '' : 's') + '.';
        if (row) retried[row] = n ? 'Re-queued' : 'Not failed any more';
      }
      say($('#dead-msg'), text, 'ok');
      if (!row) dead.selected.clear();
      else dead.selected.delete(row);
      dead.page = pager('dead');
    } catch (e) {
      say($('#dead-msg'), 'Retry failed: ' + e.message, 'bad');
      if (row) retried[row] = 'Retry failed: ' + e.message;
    }
    if (row) setTimeout(() => delete retried[row], 4 * EVERY_MS);
    loadDead();
    tick(true);
  }

  function wireDead() {
    $('#dead-tabs').addEventListener('click', (e) => {
      const b = e.target.closest('button[data-kind]');
      if (!b) return;
      Object.assign(dead, { kind: b.dataset.kind, page: pager('dead') });
      dead.selected.clear();
      selectTab($('#dead-tabs'), 'kind', dead.kind);
      say($('#dead-msg'), '');
      loadDead();
    });
    $('#dead-all').addEventListener('change', (e) => {
      for (const c of document.querySelectorAll('#dead input.pick')) {
        c.checked = e.target.checked;
        c.checked ? dead.selected.add(c.value) : dead.selected.delete(c.value);
      }
      renderDeadOps();
    });
    const host = $('#dead-host');
    if (bases.length > 1) {
      host.hidden = false;
      host.replaceChildren(...bases.map((b) => el('option', { value: b }, hostName(b))));
      host.addEventListener('change', () => {
        Object.assign(dead, { base: host.value, page: pager('dead') });
        dead.selected.clear();
        say($('#dead-msg'), '');
        loadDead();
      });
    }
    $('#dead-retry-selected').addEventListener('click', () => dead.selected.size && retryDead([...dead.selected]));
    $('#dead-retry-all').addEventListener('click', async () => {
      const what = dead.kind === 'callback' ? 'Re-queue every failed callback?'
        : 'Download every failed download again (up to the 1,000 kept)? Their clients get a new callback.';
      if (await confirmDialog(what + (bases.length > 1 ? ' (' + hostName(dead.base) + ')' : ''), 'Retry all')) retryDead(null);
    });
    $('#dead-next').addEventListener('click', () => { dead.page = nextPage(dead.page); $('#dead-all').checked = false; loadDead(); });
    $('#dead-first').addEventListener('click', () => { dead.page = pager('dead'); $('#dead-all').checked = false; loadDead(); });
  }

  /* Every refresh: the open aggregation and the shown page of failed jobs (O(page) each). */
  function refreshOps() {
    loadAggr(true);
    loadAggrJobs(true);
    loadDead(true);
  }

  /* ---------- loop ---------- */

  let timer = null, busy = false;
  async function tick(soon) {
    clearTimeout(timer);
    if (busy) { timer = setTimeout(tick, 200); return; }
    busy = true;
    try {
      if (soon) await new Promise((r) => setTimeout(r, 300));
      render(await Promise.all(bases.map(pollHost)));
      refreshOps();
    } catch (e) {
      console.error(e);
    } finally {
      busy = false;
      timer = setTimeout(tick, EVERY_MS);
    }
  }

  document.body.classList.toggle('multi', bases.length > 1);
  $('#every').textContent = String(EVERY_MS / 1000);
  $('#aggr-filter').addEventListener('input', () => render.model && renderAggregations(render.model));
  $('#lookup').addEventListener('submit', (e) => { e.preventDefault(); lookup($('#lookup-id').value); });
  wireAggr();
  wireDead();
  $('#token-forget').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); showTokenState(); });
  showTokenState();
  let resize = null;
  window.addEventListener('resize', () => { clearTimeout(resize); resize = setTimeout(() => render.model && renderCharts(render.model), 150); });
  tick();
})();
