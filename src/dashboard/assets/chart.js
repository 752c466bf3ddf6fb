// poolwarden dashboard: charts drawn on canvas and SVG by this page's own code.
'use strict';

const PW_COLORS = {
  used: '#3867d6', idle: '#9bb3ef', max: '#1d2330', wait: '#8e44ad', bad: '#d3302f',
  warn: '#d98c00', ok: '#1f9d55', grid: '#e6e9ef', text: '#6b7385',
  primary: '#3867d6', replica: '#20a39e', down: '#d3302f', p50: '#20a39e', p99: '#8e44ad',
};

// Size a canvas's backing store to its CSS box (sharp on high-DPI screens).
function pwFit(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return { ctx, w: canvas.clientWidth, h: canvas.clientHeight };
}

function pwFmt(v) {
  if (v == null || !isFinite(v)) return '–';
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + 'k';
  if (Math.abs(v) >= 100 || Number.isInteger(v)) return String(Math.round(v));
  return v.toFixed(Math.abs(v) >= 10 ? 1 : 2);
}

// A line chart of `series` ([{ values, color, fill, step, dash }]) over the same x positions.
// `capacity` fixes the x scale (points kept); `floor` is the least top of the y scale.
function pwLineChart(canvas, series, capacity, floor) {
  const { ctx, w, h } = pwFit(canvas);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 30, r: 4, t: 6, b: 4 };
  let top = floor || 1;
  let n = 0;
  for (const s of series) {
    n = Math.max(n, s.values.length);
    for (const v of s.values) if (v != null && isFinite(v) && v > top) top = v;
  }
  top = top * 1.1;
  capacity = Math.min(capacity, Math.max(60, n)); // the first minute fills the width
  const x = (i, len) => pad.l + (w - pad.l - pad.r) * ((capacity - len + i) / Math.max(1, capacity - 1));
  const y = (v) => pad.t + (h - pad.t - pad.b) * (1 - v / top);
  ctx.font = '10px system-ui, sans-serif';
  ctx.fillStyle = PW_COLORS.text;
  ctx.strokeStyle = PW_COLORS.grid;
  ctx.lineWidth = 1;
  for (const f of [0, 0.5, 1]) {
    const v = (top / 1.1) * f;
    ctx.beginPath(); ctx.moveTo(pad.l, y(v)); ctx.lineTo(w - pad.r, y(v)); ctx.stroke();
    ctx.fillText(pwFmt(v), 2, Math.min(h - 2, y(v) + 3));
  }
  for (const s of series) {
    const vals = s.values;
    if (!vals.length) continue;
    ctx.beginPath();
    let started = false;
    vals.forEach((v, i) => {
      if (v == null || !isFinite(v)) { started = false; return; }
      const px = x(i, vals.length), py = y(v);
      if (!started) { ctx.moveTo(px, py); started = true; }
      else if (s.step) { ctx.lineTo(px, y(vals[i - 1] ?? v)); ctx.lineTo(px, py); }
      else ctx.lineTo(px, py);
    });
    ctx.strokeStyle = s.color;
    ctx.lineWidth = s.width || 1.5;
    ctx.setLineDash(s.dash || []);
    ctx.stroke();
    ctx.setLineDash([]);
    if (s.fill) {
      ctx.lineTo(x(vals.length - 1, vals.length), y(0));
      ctx.lineTo(x(0, vals.length), y(0));
      ctx.closePath();
      ctx.globalAlpha = 0.25; ctx.fillStyle = s.color; ctx.fill(); ctx.globalAlpha = 1;
    }
  }
  canvas.dataset.points = String(n);
}

// The role timeline of one replica set: a row per member, one cell per snapshot, coloured
// by role (and red while the set does not route to it), with a tick for each role change.
function pwTimeline(svg, rows, capacity, changes, t0, t1) {
  const NS = 'http://www.w3.org/2000/svg';
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const rowH = 14, labelW = 140, width = 1000;
  const height = rows.length * rowH + 14;
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text != null) e.textContent = text;
    svg.appendChild(e);
    return e;
  };
  capacity = Math.min(capacity, Math.max(60, ...rows.map((r) => r.cells.length)));
  const cellW = (width - labelW) / capacity;
  rows.forEach((row, r) => {
    const yy = r * rowH + 2;
    el('text', { x: 4, y: yy + 10, 'font-size': 10, fill: PW_COLORS.text }, row.label);
    const off = capacity - row.cells.length;
    row.cells.forEach((c, i) => {
      const color = !c ? '#e6e9ef' : !c.usable ? PW_COLORS.down : PW_COLORS[c.role] || '#999';
      el('rect', { x: labelW + (off + i) * cellW, y: yy, width: Math.max(cellW, 1) + 0.3, height: rowH - 4, fill: color });
    });
  });
  const len = Math.max(1, ...rows.map((r) => r.cells.length));
  if (t1 > t0) {
    for (const c of changes) {
      if (c.at < t0) continue;
      const xx = labelW + cellW * (capacity - len + (len - 1) * ((c.at - t0) / (t1 - t0)));
      el('line', { x1: xx, x2: xx, y1: 0, y2: height - 12, stroke: PW_COLORS.max, 'stroke-width': 1.5, 'stroke-dasharray': '3 2' });
    }
    const secs = Math.round((t1 - t0) / 1000);
    el('text', { x: labelW + cellW * (capacity - len), y: height - 2, 'font-size': 10, fill: PW_COLORS.text }, `-${secs}s`);
    el('text', { x: width - 30, y: height - 2, 'font-size': 10, fill: PW_COLORS.text }, 'now');
  }
}
