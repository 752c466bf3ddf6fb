// poolwarden dashboard: the stream (fetch + server-sent events, the token in a header),
// the state kept per pool and per replica set, and the DOM. Text is only ever set with
// textContent; nothing from the stream becomes markup.
(function () {
  const KEEP = 180;          // points kept per chart (3 minutes at one per second)
  const RECENT = 10;         // points that make "recent" (timeouts rising, connect errors)
  const $ = (id) => document.getElementById(id);

  // The token: taken from ?token= once, removed from the address bar, kept in memory.
  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  if (token !== null) {
    params.delete('token');
    const q = params.toString();
    history.replaceState(null, '', location.pathname + (q ? '?' + q : '') + location.hash);
  }
  const eventsUrl = location.pathname.replace(/\/+$/, '') + '/events';

  const pools = new Map();   // key -> { el, hist, prev, prevAt }
  const sets = new Map();    // name -> { el, cells: Map(key -> []), prevReads, share }
  const seen = new Set();    // event seqs already shown
  const breakerLog = [];     // newest last
  const roleLog = [];
  let updates = 0;

  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v; else if (k.startsWith('data-')) e.setAttribute(k, v); else e[k] = v;
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }
  const time = (ms) => h('time', {}, new Date(ms).toLocaleTimeString());
  const setText = (e, t) => { if (e.textContent !== t) e.textContent = t; };

  // ----- the stream ------------------------------------------------------------------
  function status(what, text) { const c = $('conn'); c.dataset.conn = what; setText(c, text); }

  async function connect(delay) {
    try {
      const headers = { 'Accept': 'text/event-stream' };
      if (token) headers['Authorization'] = 'Bearer ' + token;
      const res = await fetch(eventsUrl, { headers, cache: 'no-store' });
      if (res.status === 401) { status('unauthorized', 'unauthorized: open the page with ?token=…'); return; }
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      status('live', 'live');
      delay = 500;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let at;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          dispatch(block);
        }
      }
      throw new Error('stream ended');
    } catch (e) {
      status('down', 'disconnected, retrying');
      setTimeout(() => connect(Math.min((delay || 500) * 2, 10000)), delay || 500);
    }
  }

  function dispatch(block) {
    let event = 'message', data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') event = value; else if (field === 'data') data += value;
    }
    if (!data) return;
    let msg;
    try { msg = JSON.parse(data); } catch (e) { return; }
    if (event === 'snapshot') snapshot(msg);
    else if (event === 'breaker' || event === 'role') record(msg, true);
  }

  // ----- events ----------------------------------------------------------------------
  function record(ev, live) {
    if (seen.has(ev.seq)) return;
    seen.add(ev.seq);
    const log = ev.kind === 'breaker' ? breakerLog : roleLog;
    log.push(ev);
    log.sort((a, b) => a.seq - b.seq);
    if (log.length > 500) log.shift();
    if (ev.kind === 'breaker') {
      const p = pools.get(ev.key);
      if (live && p) { p.breaker = ev.to; judge(p); }
      renderBreakerLogs();
    }
  }

  function poolLabel(key) {
    const p = pools.get(key);
    return p ? p.label : key.slice(0, 12);
  }

  function breakerItem(ev, withPool) {
    return h('li', { 'data-to': ev.to }, time(ev.at),
      withPool ? poolLabel(ev.key) + ': ' : '', `${ev.from} → `,
      h('span', { class: 'badge', 'data-breaker': ev.to }, ev.to), ev.reason ? ` ${ev.reason}` : '');
  }

  function renderBreakerLogs() {
    $('breaker-log').replaceChildren(...breakerLog.slice(-50).reverse().map((ev) => breakerItem(ev, true)));
    for (const [key, p] of pools) {
      const mine = breakerLog.filter((ev) => ev.key === key).slice(-8).reverse();
      p.el.blog.replaceChildren(...mine.map((ev) => breakerItem(ev, false)));
    }
  }

  // ----- a snapshot ------------------------------------------------------------------
  function snapshot(s) {
    updates += 1;
    const feed = s.feed || {};
    const f = $('feed');
    f.dataset.updates = String(updates);
    f.dataset.dropped = String(feed.dropped || 0);
    setText(f, `updates ${updates} · every ${feed.interval_ms || '?'} ms · streams ${feed.clients ?? '?'} · ` +
      `dropped for this page ${feed.dropped || 0} (all pages ${feed.dropped_total || 0})`);
    if (s.error) { status('down', s.error); return; }
    for (const ev of (s.breaker_log || [])) record(ev, false);
    for (const ev of (s.role_log || [])) record(ev, false);
    renderTotals(s.supervisor || {}, s.health);
    const live = new Set();
    for (const view of (s.pools || [])) { live.add(view.key); renderPool(view, s.at, s.health); }
    for (const [key, p] of pools) if (!live.has(key)) { p.el.root.remove(); pools.delete(key); }
    $('no-pools').hidden = pools.size > 0;
    renderSets(s.replica_sets || [], s.at);
    const trouble = [...pools.values()].filter((p) => p.state === 'bad').length;
    const t = $('trouble');
    t.dataset.troubleCount = String(trouble);
    setText(t, trouble ? `${trouble} pool${trouble > 1 ? 's' : ''} in trouble` : 'no trouble');
  }

  function renderTotals(sup, health) {
    const items = [['pools', sup.pools], ['open', sup.total], ['in use', sup.in_use], ['idle', sup.idle],
      ['waiting', sup.waiters], ['served', sup.connections_served], ['created', sup.pools_created]];
    $('totals').replaceChildren(...items.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, pwFmt(v)))));
    const el = $('health');
    if (health) {
      const status = String(health.status).toLowerCase();
      el.dataset.health = status;
      const bad = health.unhealthy.length;
      setText(el, `health: ${status}` + (bad ? ` (${bad} failing)` : ''));
      el.title = health.unhealthy.map(([k, why]) => `${poolLabel(k)}: ${why}`).join('\n');
    }
  }

  // Latency fields, whatever their spelling: `wait_p99_ms`, `wait_p99` (a duration),
  // `wait: { p50, p99, max }`. Units from the name (`_us`, `_ns`, `_s`), else milliseconds.
  function toMs(v, key) {
    if (v == null) return null;
    if (typeof v === 'number') {
      if (/_us$/.test(key)) return v / 1e3;
      if (/_ns$/.test(key)) return v / 1e6;
      if (/(_s|_secs)$/.test(key)) return v * 1e3;
      return v;
    }
    if (typeof v === 'object' && 'secs' in v) return v.secs * 1e3 + (v.nanos || 0) / 1e6;
    if (typeof v === 'string') {
      let ms = 0, any = false;
      for (const m of v.matchAll(/([\d.]+)\s*(ns|us|µs|ms|s|m)\b/g)) {
        any = true;
        ms += parseFloat(m[1]) * ({ ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1e3, m: 6e4 })[m[2]];
      }
      return any ? ms : null;
    }
    return null;
  }
  function latency(stats, prefix) {
    const out = {};
    for (const [k, v] of Object.entries(stats)) {
      if (!k.startsWith(prefix)) continue;
      if (v && typeof v === 'object' && !('secs' in v)) {
        // `PoolStats::wait_time` / `use_time`: `{ count, p50, p99, max }` in seconds.
        for (const q of ['p50', 'p99', 'max']) if (q in v) out[q] = toMs(v[q], k.endsWith('_time') ? `${q}_s` : q);
        continue;
      }
      const m = k.match(/(p50|p99|max)/);
      if (m) out[m[1]] = toMs(v, k);
    }
    return out;
  }
  // Close counts by reason: an object of numbers (or [reason, n] pairs) named like `close…`.
  function closeReasons(stats) {
    for (const [k, v] of Object.entries(stats)) {
      if (!/clos/.test(k) || !v || typeof v !== 'object') continue;
      const pairs = Array.isArray(v) ? v.filter((p) => Array.isArray(p) && p.length === 2) : Object.entries(v);
      if (pairs.length && pairs.every(([, n]) => typeof n === 'number')) return pairs;
    }
    return null;
  }

  function newPool(key) {
    const el = {};
    el.name = h('h3');
    el.breaker = h('span', { class: 'badge', 'data-breaker': 'closed' }, 'closed');
    el.flags = h('span');
    el.target = h('div', { class: 'target' });
    el.nums = h('dl', { class: 'nums' });
    el.util = h('canvas', { class: 'chart util', 'data-points': '0' });
    el.rates = h('canvas', { class: 'chart rates', 'data-points': '0' });
    el.lat = h('canvas', { class: 'chart latency', 'data-points': '0' });
    el.latFig = h('figure', { hidden: true }, h('figcaption', {}, 'wait time (ms) ',
      h('i', {}, 'p50'), h('i', {}, 'p99')), el.lat);
    el.closes = h('div', { class: 'kv', hidden: true });
    el.leaks = h('div', { class: 'kv', hidden: true });
    el.blog = h('ol', { class: 'log' });
    const legend = (...items) => h('figcaption', {}, ...items.map(([t, c]) => { const i = h('i', {}, t); i.style.color = c; return i; }));
    el.root = h('article', { class: 'pool', 'data-pool-key': key, 'data-breaker': 'closed', 'data-state': 'ok' },
      h('header', {}, el.name, el.flags, el.breaker), el.target, el.nums,
      h('figure', {}, legend(['in use', PW_COLORS.used], ['idle', PW_COLORS.idle], ['max', PW_COLORS.max], ['waiters', PW_COLORS.wait]), el.util),
      h('figure', {}, legend(['timeouts/s', PW_COLORS.bad], ['connect errors/s', PW_COLORS.warn], ['connects/s', PW_COLORS.ok]), el.rates),
      el.latFig, el.closes, el.leaks, el.blog);
    const [p50, p99] = el.latFig.querySelectorAll('i');
    p50.style.color = PW_COLORS.p50; p99.style.color = PW_COLORS.p99;
    $('pools').append(el.root);
    const hist = { used: [], idle: [], max: [], waiters: [], timeouts: [], errors: [], connects: [], p50: [], p99: [] };
    return { key, el, hist, prev: null, prevAt: 0, breaker: 'closed', state: 'ok', reasons: [] };
  }

  function push(arr, v) { arr.push(v); if (arr.length > KEEP) arr.shift(); }

  function renderPool(view, at, health) {
    let p = pools.get(view.key);
    if (!p) { p = newPool(view.key); pools.set(view.key, p); }
    const s = view.stats;
    p.label = view.names.length ? view.names.join(', ') : view.set ? `${view.set}: ${view.target}` : view.target || view.short;
    p.set = view.set;
    setText(p.el.name, p.label);
    setText(p.el.target, `${view.target}  ·  ${view.short}  ·  ${s.backend}`);
    const dt = p.prev ? Math.max(0.001, (at - p.prevAt) / 1000) : 0;
    const rate = (field) => (p.prev && dt ? Math.max(0, (s[field] - p.prev[field]) / dt) : 0);
    const hi = p.hist;
    push(hi.used, s.in_use); push(hi.idle, s.idle); push(hi.max, s.effective_size ?? s.max_size);
    push(hi.waiters, s.waiters); push(hi.timeouts, rate('timeouts')); push(hi.errors, rate('connect_errors'));
    push(hi.connects, rate('created'));
    const lat = latency(s, 'wait');
    const hasLat = lat.p50 != null || lat.p99 != null;
    push(hi.p50, lat.p50 ?? null); push(hi.p99, lat.p99 ?? null);
    p.prev = s; p.prevAt = at;
    p.breaker = s.breaker;
    p.unhealthy = !!(health && health.unhealthy.some(([k]) => k === view.key));
    const recent = (arr) => arr.slice(-RECENT).reduce((a, b) => a + (b || 0), 0);
    const nums = [
      ['in use / idle / max', `${s.in_use} / ${s.idle} / ${s.max_size}`], ['waiters', s.waiters],
      ['served', pwFmt(s.served)], ['timeouts', s.timeouts, recent(hi.timeouts) > 0],
      ['connects', pwFmt(s.created)], ['connect errors', s.connect_errors, recent(hi.errors) > 0],
      ['closed', pwFmt(s.closed)], ['leaks', `${s.leaks_reported} / ${s.leaks_reclaimed} reclaimed`, s.leaks_reported > s.leaks_reclaimed],
    ];
    if (hasLat) nums.push(['wait p50 / p99', `${pwFmt(lat.p50)} / ${pwFmt(lat.p99)} ms`]);
    p.el.nums.replaceChildren(...nums.map(([k, v, bad]) => h('div', {}, h('dt', {}, k), h('dd', { class: bad ? 'bad' : '' }, String(v)))));
    pwLineChart(p.el.util, [
      { values: hi.idle.map((v, i) => v + hi.used[i]), color: PW_COLORS.idle, fill: true },
      { values: hi.used, color: PW_COLORS.used, fill: true },
      { values: hi.max, color: PW_COLORS.max, dash: [4, 3], width: 1 },
      { values: hi.waiters, color: PW_COLORS.wait, width: 2 },
    ], KEEP, 1);
    pwLineChart(p.el.rates, [
      { values: hi.connects, color: PW_COLORS.ok, width: 1 },
      { values: hi.errors, color: PW_COLORS.warn, width: 2 },
      { values: hi.timeouts, color: PW_COLORS.bad, width: 2 },
    ], KEEP, 1);
    p.el.latFig.hidden = !hasLat;
    if (hasLat) pwLineChart(p.el.lat, [{ values: hi.p50, color: PW_COLORS.p50 }, { values: hi.p99, color: PW_COLORS.p99, width: 2 }], KEEP, 1);
    const closes = closeReasons(s);
    p.el.closes.hidden = !closes;
    if (closes) p.el.closes.replaceChildren(h('b', {}, 'closed by reason:'), ...closes.map(([r, n]) => h('span', {}, `${r} `, h('b', {}, pwFmt(n)))));
    const leaks = Array.isArray(view.leaks) ? view.leaks : Array.isArray(s.leaks) ? s.leaks : null;
    p.el.leaks.hidden = !(leaks && leaks.length);
    if (leaks && leaks.length) p.el.leaks.replaceChildren(h('b', {}, `leaked now (${leaks.length}):`),
      ...leaks.slice(0, 10).map((l) => h('span', {}, Object.entries(l).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' '))));
    p.reasons = [];
    if (s.failed) p.reasons.push(['bad', 'failed']);
    if (s.closed_pool) p.reasons.push(['warn', 'closed']);
    if (recent(hi.timeouts) > 0) p.reasons.push(['bad', 'timeouts rising']);
    if (recent(hi.errors) > 0) p.reasons.push(['warn', 'connect errors']);
    if (p.unhealthy) p.reasons.push(['bad', 'probe failing']);
    if (s.waiters > 0 && s.in_use >= (s.effective_size ?? s.max_size)) p.reasons.push(['warn', 'saturated']);
    if (s.paused) p.reasons.push(['warn', 'paused']);
    if (leaks && leaks.length) p.reasons.push(['warn', 'leaks']);
    judge(p);
  }

  // Whether a pool stands out: red (bad) or amber (warn), from its breaker and reasons.
  function judge(p) {
    const b = p.breaker;
    p.state = b === 'open' || p.reasons.some(([lvl]) => lvl === 'bad') ? 'bad'
      : b === 'half_open' || p.reasons.length ? 'warn' : 'ok';
    p.el.root.dataset.state = p.state;
    p.el.root.dataset.breaker = b;
    p.el.breaker.dataset.breaker = b;
    setText(p.el.breaker, 'breaker ' + b.replace('_', '-'));
    p.el.flags.replaceChildren(...p.reasons.map(([lvl, t]) => h('span', { class: 'badge ' + lvl }, t)));
  }

  // ----- replica sets ----------------------------------------------------------------
  function renderSets(list, at) {
    $('sets-section').hidden = list.length === 0;
    const live = new Set(list.map((s) => s.name));
    for (const [name, st] of sets) if (!live.has(name)) { st.el.root.remove(); sets.delete(name); }
    for (const set of list) {
      let st = sets.get(set.name);
      if (!st) {
        const el = { body: h('tbody'), svg: document.createElementNS('http://www.w3.org/2000/svg', 'svg'), log: h('ol', { class: 'log' }) };
        el.svg.setAttribute('class', 'timeline');
        const head = h('tr', {}, ...['member', 'role', 'routed', 'breaker', 'lag', 'in use / idle', 'share of reads'].map((t) => h('th', {}, t)));
        el.root = h('div', { class: 'card', 'data-set': set.name }, h('h3', {}, set.name),
          h('table', {}, h('thead', {}, head), el.body), el.svg, el.log);
        $('sets').append(el.root);
        st = { el, cells: new Map(), times: [], prevReads: new Map() };
        sets.set(set.name, st);
      }
      push(st.times, at);
      const deltas = set.members.map((m) => Math.max(0, m.reads - (st.prevReads.get(m.key) ?? m.reads)));
      const total = deltas.reduce((a, b) => a + b, 0);
      const rows = set.members.map((m, i) => {
        st.prevReads.set(m.key, m.reads);
        if (!st.cells.has(m.key)) st.cells.set(m.key, []);
        push(st.cells.get(m.key), { role: m.role, usable: m.usable });
        const share = total ? deltas[i] / total : 0;
        const bar = h('span'); bar.style.width = `${Math.round(share * 100)}%`;
        return h('tr', { 'data-member-key': m.key, 'data-role': m.role, 'data-usable': String(m.usable) },
          h('td', {}, m.host), h('td', {}, h('span', { class: 'badge role', 'data-role': m.role }, m.role)),
          h('td', {}, m.usable ? 'yes' : 'no (ejected)'),
          h('td', {}, h('span', { class: 'badge', 'data-breaker': m.breaker }, m.breaker)),
          h('td', {}, m.lag_ms == null ? '–' : `${pwFmt(m.lag_ms)} ms`), h('td', {}, `${m.in_use} / ${m.idle}`),
          h('td', {}, h('span', { class: 'bar' }, bar), ` ${Math.round(share * 100)}%`));
      });
      st.el.body.replaceChildren(...rows);
      const changes = roleLog.filter((ev) => ev.set === set.name);
      pwTimeline(st.el.svg, set.members.map((m) => ({ label: m.host, cells: st.cells.get(m.key) })), KEEP, changes, st.times[0], at);
      st.el.log.replaceChildren(...changes.slice(-12).reverse().map((ev) => h('li', {}, time(ev.at),
        `${ev.host}: ${ev.from} → `, h('span', { class: 'badge role', 'data-role': ev.to }, ev.to))));
    }
  }

  connect(500);
})();
