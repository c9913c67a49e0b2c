// veernet review: the page. Plain JavaScript, no libraries, nothing fetched but this server's API.
//
// The scan is drawn from tiles (/api/tile: TILE columns at a zoom level, never the whole scan at
// once), the traced curves from the LAS values the server turned into scan rows, the track grid and
// axes from the sidecar's axes. Coordinates: image column (depth) and row (value), canonical.
"use strict";

const TILE = 512;
const LEVELS = [1, 2, 4, 8, 16, 32, 64];
const MARGIN = { l: 70, r: 70, t: 6, b: 30 };
const MAX_PLOT_H = 560;
const $ = (id) => document.getElementById(id);

const S = {
  queue: [], counts: {}, item: null, scan: null, curve: null,
  x0: 0, sx: 1, sy: 1, tiles: new Map(), order: null,
  mode: "view", points: [], range: [], drag: null, mouse: null,
};

// ------------------------------------------------------------------ server
async function api(path, body) {
  const opt = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const r = await fetch(path, opt);
  let j = null;
  try { j = await r.json(); } catch (e) { j = { error: r.statusText }; }
  if (!r.ok) { const e = new Error(j.error || r.statusText); e.status = r.status; throw e; }
  return j;
}

function say(text, kind) {
  const m = $("msg");
  m.textContent = text;
  m.className = kind || "";
}

// ------------------------------------------------------------------ queue
async function loadQueue() {
  const q = await api("/api/queue");
  S.queue = q.items;
  S.counts = q.counts;
  $("outdir").textContent = q.output.split("/").pop();  // the whole path in the tooltip
  $("outdir").title = q.output;
  if (!$("who").value) $("who").value = localStorage.getItem("veernet-review-who") || q.reviewer;
  fillFilters();
  renderQueue();
}

function fillFilters() {
  const fill = (sel, values) => {
    const keep = sel.value;
    while (sel.options.length > 1) sel.remove(1);
    for (const v of values) sel.add(new Option(v, v));
    sel.value = values.includes(keep) ? keep : "";
  };
  fill($("f-reason"), [...new Set(S.queue.flatMap((it) => it.reasons))].sort());
  fill($("f-curve"), [...new Set(S.queue.map((it) => it.curve))].sort());
}

function filtered() {
  const reason = $("f-reason").value, curve = $("f-curve").value;
  const scan = $("f-scan").value.trim(), done = $("f-done").checked;
  return S.queue.filter((it) => (!reason || it.reasons.includes(reason)) && (!curve || it.curve === curve)
    && (!scan || it.scan_id.includes(scan)) && (done || !it.status));
}

function fmt(v, d) { return v === null || v === undefined ? "-" : Number(v).toFixed(d); }

function renderQueue() {
  const ol = $("queue");
  ol.textContent = "";
  for (const it of filtered()) {
    const li = document.createElement("li");
    li.dataset.scan = it.scan_id;
    li.dataset.curve = it.curve;
    if (S.item && S.item.scan_id === it.scan_id && S.item.curve === it.curve) li.className = "current";
    const head = document.createElement("div");
    head.textContent = `${it.scan_id} · ${it.curve}`;
    if (it.status) {
      const b = document.createElement("span");
      b.className = `badge ${it.status}`;
      b.textContent = it.status;
      head.append(b);
    }
    const why = document.createElement("div");
    why.className = "why";
    why.textContent = it.sheet ? "whole sheet: not reviewable here yet" : it.reason;
    const fig = document.createElement("div");
    fig.className = "fig";
    fig.textContent = `cov ${fmt(it.coverage, 2)} conf ${fmt(it.mean_confidence, 2)} margin ${fmt(it.qc_margin, 2)}`
      + ` ink ${fmt(it.qc_ink, 2)} grid ${fmt(it.qc_grid, 2)}`;
    li.append(head, why, fig);
    li.addEventListener("click", () => openItem(it));
    ol.append(li);
  }
  const c = S.counts;
  $("left").textContent = `${c.left} of ${c.flagged} flagged curves left · ${c.accepted} accepted · `
    + `${c.corrected} corrected · ${c.rejected} rejected`;
  $("left").dataset.left = c.left;
}

async function openItem(it) {
  S.item = it;
  try {
    await loadScan(it.scan_id, it.curve);
  } catch (e) {
    say(e.message, "error");
  }
  renderQueue();
}

function nextItem() {
  const rest = filtered().filter((it) => !it.status);
  if (!rest.length) { say("nothing left in the queue with these filters", "ok"); return; }
  let k = 0;
  if (S.item) {
    const i = rest.findIndex((it) => it.scan_id === S.item.scan_id && it.curve === S.item.curve);
    k = i >= 0 ? (i + 1) % rest.length : 0;
  }
  openItem(rest[k]);
}

// ------------------------------------------------------------------ scan
async function loadScan(id, curve) {
  setScan(await api(`/api/scan?id=${encodeURIComponent(id)}`), curve);
}

function setScan(s, curve) {
  const same = S.scan && S.scan.scan_id === s.scan_id;
  S.scan = s;
  if (curve) S.curve = curve;
  if (!s.curves.some((c) => c.mnemonic === S.curve)) S.curve = s.curves[0].mnemonic;
  // LAS rows in column order (a depth axis may run against the pixels)
  const n = s.cols.length;
  S.order = [...Array(n).keys()];
  if (n > 1 && s.cols[0] > s.cols[n - 1]) S.order.reverse();
  if (!same) {
    S.tiles = new Map();
    layout();
    S.sx = S.sy;  // start undistorted: one image pixel is as wide as it is tall
    S.x0 = 0;
  }
  const sel = $("curve");
  sel.textContent = "";
  for (const c of s.curves) sel.add(new Option(`${c.mnemonic}${c.status ? " (" + c.status + ")" : ""}`, c.mnemonic));
  sel.value = S.curve;
  document.body.dataset.scan = s.scan_id;
  document.body.dataset.version = s.version;
  showTitle();
  cancelMode(true);
  draw();
}

function current() { return S.scan.curves.find((c) => c.mnemonic === S.curve); }

function showTitle() {
  const c = current();
  $("title").textContent = `${S.scan.scan_id} · ${c.mnemonic} (${c.unit || "no unit"})`
    + (c.status ? ` · ${c.status}` : c.flagged ? " · flagged" : "") + ` · version ${S.scan.version}`
    + ` · ${S.scan.width} x ${S.scan.height} px` + (S.scan.calibrated ? "" : " · uncalibrated (normalised)");
  $("reason").textContent = c.reason ? `QC: ${c.reason}` : "QC: not flagged";
}

// ------------------------------------------------------------------ geometry
function layout() {
  const canvas = $("canvas");
  const w = Math.max(400, $("view").clientWidth - 4);
  const plotH = Math.min(MAX_PLOT_H, S.scan ? S.scan.height : MAX_PLOT_H);
  canvas.width = w;
  canvas.height = plotH + MARGIN.t + MARGIN.b;
  if (S.scan) S.sy = plotH / S.scan.height;
}

function plotW() { return $("canvas").width - MARGIN.l - MARGIN.r; }
function toX(col) { return MARGIN.l + (col - S.x0) * S.sx; }
function toY(row) { return MARGIN.t + row * S.sy; }
function toCol(x) { return S.x0 + (x - MARGIN.l) / S.sx; }
function toRow(y) { return (y - MARGIN.t) / S.sy; }
function minSx() { return Math.min(S.sy, plotW() / S.scan.width); }

function clampView() {
  const vis = plotW() / S.sx;
  S.x0 = Math.max(0, Math.min(S.x0, S.scan.width - vis));
  const pan = $("pan");
  pan.max = Math.max(0, Math.round(S.scan.width - vis));
  pan.value = Math.round(S.x0);
}

function zoom(factor, atX) {
  if (!S.scan) return;
  const x = atX === undefined ? MARGIN.l + plotW() / 2 : atX;
  const col = toCol(x);
  S.sx = Math.max(minSx(), Math.min(8, S.sx * factor));
  S.x0 = col - (x - MARGIN.l) / S.sx;
  draw();
}

// nearest LAS row (index) to a column: binary search over the column-ordered rows
function nearestRow(col) {
  const o = S.order, cols = S.scan.cols;
  let lo = 0, hi = o.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (cols[o[mid]] < col) lo = mid; else hi = mid;
  }
  return Math.abs(cols[o[lo]] - col) <= Math.abs(cols[o[hi]] - col) ? o[lo] : o[hi];
}

function interp(x, xs, ys) {  // xs ascending
  if (x <= xs[0]) return ys[0];
  if (x >= xs[xs.length - 1]) return ys[ys.length - 1];
  let lo = 0, hi = xs.length - 1;
  while (hi - lo > 1) { const m = (lo + hi) >> 1; if (xs[m] < x) lo = m; else hi = m; }
  return ys[lo] + (ys[hi] - ys[lo]) * (x - xs[lo]) / (xs[hi] - xs[lo]);
}

function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

function label(v) {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

// value-axis ticks of one curve: (row, label), from the sidecar's two references
function valueTicks(axis) {
  const [[r0, v0], [r1, v1]] = axis.ref;
  const out = [];
  if (axis.scale === "log") {
    const a = Math.log10(v0), b = Math.log10(v1);
    for (let e = Math.ceil(Math.min(a, b)); e <= Math.floor(Math.max(a, b)); e++) {
      out.push([r0 + (e - a) / (b - a) * (r1 - r0), label(Math.pow(10, e))]);
    }
  } else {
    for (let k = 0; k <= 10; k++) out.push([r0 + k / 10 * (r1 - r0), label(v0 + k / 10 * (v1 - v0))]);
  }
  return out;
}

// ------------------------------------------------------------------ drawing
function levelFor(sx) {
  let level = 1;
  for (const l of LEVELS) if (l * sx <= 1.0001) level = l;
  return level;
}

function tile(level, x) {
  const key = `${level}:${x}`;
  let t = S.tiles.get(key);
  if (!t) {
    const img = new Image();
    t = { img, ok: false };
    img.onload = () => { t.ok = true; draw(); };
    img.onerror = () => { t.failed = true; };
    img.src = `/api/tile?id=${encodeURIComponent(S.scan.scan_id)}&x=${x}&level=${level}`;
    S.tiles.set(key, t);
  }
  return t;
}

function draw() {
  if (!S.scan) return;
  clampView();
  const canvas = $("canvas"), ctx = canvas.getContext("2d");
  const s = S.scan, W = plotW(), H = s.height * S.sy;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const c0 = S.x0, c1 = S.x0 + W / S.sx;
  ctx.save();
  ctx.beginPath();
  ctx.rect(MARGIN.l, MARGIN.t, W, H);
  ctx.clip();
  ctx.fillStyle = "#ddd";
  ctx.fillRect(MARGIN.l, MARGIN.t, W, H);
  // tiles of the visible columns only; a coarser tile stands in while a finer one loads
  const level = levelFor(S.sx), span = TILE * level;
  let drawn = 0;
  for (let x = Math.floor(c0 / span) * span; x < c1 && x < s.width; x += span) {
    const t = tile(level, x);
    let img = t.ok ? t.img : null, lv = level;
    if (!img) {
      for (const l of LEVELS) {
        if (l <= level) continue;
        const c = S.tiles.get(`${l}:${Math.floor(x / (TILE * l)) * TILE * l}`);
        if (c && c.ok) { img = c.img; lv = l; break; }
      }
    }
    if (img) {
      const tx = lv === level ? x : Math.floor(x / (TILE * lv)) * TILE * lv;
      ctx.drawImage(img, toX(tx), MARGIN.t, img.width * lv * S.sx, H);
      drawn++;
    }
  }
  canvas.dataset.level = level;
  canvas.dataset.tilesDrawn = drawn;
  drawGrid(ctx, c0, c1);
  for (const c of s.curves) if (c.mnemonic !== S.curve) drawCurve(ctx, c, c0, c1, 1.2);
  drawCurve(ctx, current(), c0, c1, 2.2);
  drawEdit(ctx);
  ctx.restore();
  drawAxes(ctx, c0, c1);
}

function drawCurve(ctx, c, c0, c1, width) {
  const cols = S.scan.cols, o = S.order;
  ctx.strokeStyle = c.colour;
  ctx.lineWidth = width;
  ctx.globalAlpha = c.mnemonic === S.curve ? 0.95 : 0.7;
  ctx.beginPath();
  let pen = false, prev = null;
  let i0 = o.indexOf(nearestRow(c0));
  for (let k = Math.max(0, i0 - 1); k < o.length; k++) {
    const i = o[k], r = c.rows[i];
    if (cols[i] > c1 + 1) break;
    // a jump of more than half the track is a backup wrap folded back: lift the pen
    if (r === null || (prev !== null && Math.abs(r - prev) > S.scan.height / 2)) { pen = false; }
    if (r !== null) {
      if (pen) ctx.lineTo(toX(cols[i]), toY(r)); else ctx.moveTo(toX(cols[i]), toY(r));
      pen = true;
    }
    prev = r;
  }
  ctx.stroke();
  ctx.globalAlpha = 1;
}

function drawGrid(ctx, c0, c1) {
  const s = S.scan, W = plotW(), H = s.height * S.sy;
  ctx.strokeStyle = "rgba(0,120,0,0.35)";
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (const [col] of depthTicks(c0, c1)) { const x = Math.round(toX(col)) + 0.5; ctx.moveTo(x, MARGIN.t); ctx.lineTo(x, MARGIN.t + H); }
  for (const [row] of valueTicks(current().axis)) { const y = Math.round(toY(row)) + 0.5; ctx.moveTo(MARGIN.l, y); ctx.lineTo(MARGIN.l + W, y); }
  ctx.stroke();
}

// depth ticks (column, label) over the visible columns, at a round depth step
function depthTicks(c0, c1) {
  const s = S.scan, o = S.order;
  const xs = o.map((i) => s.cols[i]), ds = o.map((i) => s.depth[i]);
  const d0 = interp(c0, xs, ds), d1 = interp(c1, xs, ds);
  const lo = Math.min(d0, d1), hi = Math.max(d0, d1);
  if (!(hi > lo)) return [];
  const step = niceStep((hi - lo) / Math.max(2, plotW() / 110));
  const dsorted = ds[0] <= ds[ds.length - 1];
  const out = [];
  for (let d = Math.ceil(lo / step) * step; d <= hi; d += step) {
    const col = dsorted ? interp(d, ds, xs) : interp(d, ds.slice().reverse(), xs.slice().reverse());
    out.push([col, label(Math.round(d / step) * step)]);
  }
  return out;
}

function drawAxes(ctx, c0, c1) {
  const s = S.scan, W = plotW(), H = s.height * S.sy;
  ctx.fillStyle = "#222";
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const [col, text] of depthTicks(c0, c1)) ctx.fillText(text, toX(col), MARGIN.t + H + 3);
  ctx.fillText(`depth (${s.depth_unit})`, MARGIN.l + W / 2, MARGIN.t + H + 16);
  const others = s.curves.filter((c) => c.mnemonic !== S.curve);
  const sides = [[current(), MARGIN.l - 4, "right"], ...(others.length ? [[others[0], MARGIN.l + W + 4, "left"]] : [])];
  ctx.textBaseline = "middle";
  for (const [c, x, align] of sides) {
    ctx.fillStyle = c.colour;
    ctx.textAlign = align;
    for (const [row, text] of valueTicks(c.axis)) if (row >= 0 && row <= s.height) ctx.fillText(text, x, toY(row));
    ctx.save();
    ctx.translate(align === "right" ? 10 : MARGIN.l + W + MARGIN.r - 10, MARGIN.t + H / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillText(`${c.mnemonic} (${c.unit || "-"})`, 0, 0);
    ctx.restore();
  }
}

function drawEdit(ctx) {
  const H = S.scan.height * S.sy;
  if ((S.mode === "swap" || S.mode === "absent") && S.range.length) {
    const a = S.range[0], b = S.range.length > 1 ? S.range[1] : (S.mouse ? S.mouse.col : a);
    ctx.fillStyle = S.mode === "swap" ? "rgba(255,193,7,0.3)" : "rgba(120,120,120,0.35)";
    ctx.fillRect(toX(Math.min(a, b)), MARGIN.t, Math.abs(b - a) * S.sx, H);
  }
  if (S.mode === "redraw" && S.points.length) {
    const pts = S.points.slice().sort((p, q) => p[0] - q[0]);
    ctx.strokeStyle = "#000";
    ctx.setLineDash([5, 4]);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    pts.forEach(([c, r], k) => (k ? ctx.lineTo(toX(c), toY(r)) : ctx.moveTo(toX(c), toY(r))));
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "#ffeb3b";
    for (const [c, r] of pts) { ctx.beginPath(); ctx.arc(toX(c), toY(r), 4, 0, 2 * Math.PI); ctx.fill(); ctx.stroke(); }
  }
}

// ------------------------------------------------------------------ cursor readout
function readout(col, row) {
  const s = S.scan;
  if (col < 0 || col > s.width - 1 || row < 0 || row > s.height - 1) { $("readout").textContent = "\u00a0"; return; }
  const i = nearestRow(col);
  const parts = [`depth ${label(s.depth[i])} ${s.depth_unit}`];
  for (const c of s.curves) parts.push(`${c.mnemonic} ${c.values[i] === null ? "NULL" : label(c.values[i])} ${c.unit}`
    + ` (conf ${c.conf[i] === null ? "-" : c.conf[i].toFixed(2)})`);
  parts.push(`scan col ${col.toFixed(0)}, row ${row.toFixed(0)}`);
  $("readout").textContent = parts.join("  ·  ");
}

// ------------------------------------------------------------------ actions
async function act(action, extra) {
  if (!S.scan) { say("pick a curve in the queue first", "error"); return; }
  const who = $("who").value.trim();
  localStorage.setItem("veernet-review-who", who);
  const body = Object.assign({ scan_id: S.scan.scan_id, curve: S.curve, action, version: S.scan.version, who }, extra || {});
  try {
    const s = await api("/api/action", body);
    setScan(s);
    say(`${action} saved: ${s.scan_id} ${S.curve} (version ${s.version})`, "ok");
    await loadQueue();
  } catch (e) {
    say(e.message, e.status === 409 ? "stale" : "error");
  }
}

function setMode(mode) {
  if (!S.scan) { say("pick a curve in the queue first", "error"); return; }
  S.mode = mode;
  S.points = [];
  S.range = [];
  for (const [id, m] of [["b-redraw", "redraw"], ["b-swap", "swap"], ["b-absent", "absent"]]) $(id).classList.toggle("on", mode === m);
  $("b-apply").disabled = true;
  $("b-cancel").disabled = mode === "view";
  const hints = {
    redraw: `click points along the true ${S.curve} curve (they snap to the nearest ink), then Save`,
    swap: "click the start and the end of the depth range where the two curves are swapped, then Save",
    absent: `click the start and the end of the depth range where ${S.curve} is not on the paper, then Save`,
  };
  if (hints[mode]) say(hints[mode], "hint");
  draw();
}

function cancelMode(quiet) {
  S.mode = "view";
  S.points = [];
  S.range = [];
  for (const id of ["b-redraw", "b-swap", "b-absent"]) $(id).classList.remove("on");
  $("b-apply").disabled = true;
  $("b-cancel").disabled = true;
  if (!quiet) { say("", ""); draw(); }
}

function applyEdit() {
  if (S.mode === "redraw" && S.points.length >= 2) act("redraw", { points: S.points });
  else if ((S.mode === "swap" || S.mode === "absent") && S.range.length === 2) {
    act(S.mode, { from_col: Math.min(...S.range), to_col: Math.max(...S.range) });
  }
}

// ------------------------------------------------------------------ events
function canvasPoint(ev) {
  const r = $("canvas").getBoundingClientRect();
  const x = ev.clientX - r.left, y = ev.clientY - r.top;
  return { x, y, col: toCol(x), row: toRow(y) };
}

function wire() {
  const canvas = $("canvas");
  canvas.addEventListener("mousedown", (ev) => {
    if (!S.scan) return;
    const p = canvasPoint(ev);
    if (S.mode === "view") { S.drag = { x: ev.clientX, x0: S.x0 }; return; }
    if (p.col < 0 || p.col > S.scan.width - 1 || p.row < 0 || p.row > S.scan.height - 1) return;
    if (S.mode === "redraw") {
      S.points.push([Math.round(p.col * 10) / 10, Math.round(p.row * 10) / 10]);
      $("b-apply").disabled = S.points.length < 2;
    } else {
      if (S.range.length === 2) S.range = [];
      S.range.push(Math.round(p.col));
      $("b-apply").disabled = S.range.length < 2;
    }
    draw();
  });
  window.addEventListener("mouseup", () => { S.drag = null; });
  canvas.addEventListener("mousemove", (ev) => {
    if (!S.scan) return;
    const p = canvasPoint(ev);
    S.mouse = p;
    if (S.drag) { S.x0 = S.drag.x0 - (ev.clientX - S.drag.x) / S.sx; draw(); }
    else if (S.mode !== "view" && S.range.length === 1) draw();
    readout(p.col, p.row);
  });
  canvas.addEventListener("wheel", (ev) => {
    if (!S.scan) return;
    ev.preventDefault();
    if (ev.ctrlKey) zoom(ev.deltaY < 0 ? 1.25 : 0.8, canvasPoint(ev).x);
    else { S.x0 += (ev.deltaX + ev.deltaY) / S.sx; draw(); }
  }, { passive: false });
  $("pan").addEventListener("input", () => { S.x0 = Number($("pan").value); draw(); });
  $("b-accept").onclick = () => act("accept");
  $("b-reject").onclick = () => act("reject");
  $("b-undo").onclick = () => act("undo");
  $("b-next").onclick = nextItem;
  $("b-redraw").onclick = () => setMode("redraw");
  $("b-swap").onclick = () => setMode("swap");
  $("b-absent").onclick = () => setMode("absent");
  $("b-apply").onclick = applyEdit;
  $("b-cancel").onclick = () => cancelMode(false);
  $("b-zin").onclick = () => zoom(1.5);
  $("b-zout").onclick = () => zoom(1 / 1.5);
  $("b-full").onclick = () => { if (S.scan) { S.sx = 1; draw(); } };
  $("b-fit").onclick = () => { if (S.scan) { S.sx = minSx(); S.x0 = 0; draw(); } };
  $("curve").onchange = () => { S.curve = $("curve").value; showTitle(); draw(); };
  for (const id of ["f-reason", "f-curve", "f-done"]) $(id).onchange = renderQueue;
  $("f-scan").oninput = renderQueue;
  window.addEventListener("resize", () => { if (S.scan) { layout(); draw(); } });
  window.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
    const keys = {
      a: () => act("accept"), r: () => act("reject"), u: () => act("undo"), n: nextItem,
      "+": () => zoom(1.5), "=": () => zoom(1.5), "-": () => zoom(1 / 1.5), "1": () => { if (S.scan) { S.sx = 1; draw(); } },
      ArrowLeft: () => { if (S.scan) { S.x0 -= plotW() / S.sx / 4; draw(); } },
      ArrowRight: () => { if (S.scan) { S.x0 += plotW() / S.sx / 4; draw(); } },
      Enter: applyEdit, Escape: () => cancelMode(false),
    };
    if (keys[ev.key]) { ev.preventDefault(); keys[ev.key](); }
  });
}

// for tests and scripts: where an image point is on the canvas, and the view
window.veernetReview = {
  toCanvas: (col, row) => [toX(col), toY(row)],
  view: () => ({ x0: S.x0, sx: S.sx, sy: S.sy, level: levelFor(S.sx), mode: S.mode, curve: S.curve }),
  show: (col) => { S.x0 = col - plotW() / S.sx / 2; draw(); },
};

wire();
loadQueue().catch((e) => say(`cannot load the queue: ${e.message}`, "error"));
