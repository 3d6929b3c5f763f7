// featurestore UI: a small read-only single-page app over /ui/api (no framework, no network beyond this server).
"use strict";

const KEY = "featurestore.api_key";
const main = document.getElementById("main");
const SVGNS = "http://www.w3.org/2000/svg";

// ---- DOM helpers (text is always set as text, never parsed as HTML) ----
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const kid of kids.flat(Infinity)) if (kid !== null && kid !== undefined) el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return el;
}
// Replace the page's content (nested arrays flattened; null, undefined and false left out).
function show(...kids) {
  main.replaceChildren(...kids.flat(Infinity).filter(k => k !== null && k !== undefined && k !== false));
}
function table(headers, rows, numeric) {
  const num = new Set(numeric || []);
  return h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, headers.map((x, i) => h("th", { class: num.has(i) ? "num" : null }, x)))),
    h("tbody", {}, rows.map(r => h("tr", {}, r.map((c, i) => h("td", { class: num.has(i) ? "num" : null }, c)))))));
}
const fmt = n => (n === null || n === undefined) ? "–" : Number(n).toLocaleString("en-US");
const pct = f => (f === null || f === undefined) ? "–" : (100 * f).toFixed(f && f < 0.001 ? 3 : 2) + " %";
function num(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : Number(v.toPrecision(6)).toString();
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}
function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const u = [[86400 * 365, "y"], [86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];
  for (const [d, n] of u) if (seconds >= d) return (seconds / d).toFixed(seconds / d < 10 ? 1 : 0) + " " + n;
  return seconds.toFixed(1) + " s";
}
const pill = (text, cls) => h("span", { class: "pill " + (cls || text || "none") }, text || "none");
const link = (href, text) => h("a", { href }, text);

// ---- API ----
class HttpError extends Error { constructor(status, detail) { super(detail); this.status = status; } }
async function api(path, options) {
  const headers = Object.assign({ "Accept": "application/json" }, (options && options.headers) || {});
  const key = sessionStorage.getItem(KEY);
  if (key) headers["X-API-Key"] = key;
  const res = await fetch(path, Object.assign({}, options || {}, { headers }));
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new HttpError(res.status, body.detail || res.statusText);
  return body;
}

// ---- routing ----
const routes = [
  [/^#?\/?$/, overviewPage, "overview"],
  [/^#\/view\/(\w+)$/, viewPage, "overview"],
  [/^#\/service\/(\w+)$/, servicePage, "overview"],
  [/^#\/quality\/?$/, qualityIndex, "quality"],
  [/^#\/quality\/(\w+)$/, qualityPage, "quality"],
  [/^#\/training$/, trainingPage, "training"],
  [/^#\/playground$/, playgroundPage, "playground"],
];
let session = null;
let busy = false, pending = false;

// One render at a time: a hash change during a render (or a second render() call) re-renders once
// the current one is done, and the page is marked rendered only when no re-render is pending.
async function render() {
  delete document.body.dataset.rendered;
  if (busy) { pending = true; return; }
  busy = true;
  try {
    do { pending = false; await renderOnce(); } while (pending);
  } finally { busy = false; }
}
function mark(value) { if (!pending) document.body.dataset.rendered = value; }

async function renderOnce() {
  const hash = location.hash || "#/";
  if (!session) {
    if (!sessionStorage.getItem(KEY) && (await api("/ui/auth")).auth) return keyPage();
    try { session = await api("/ui/api/session"); }
    catch (e) { if (e.status === 401) return keyPage(); return fail(e); }
    document.getElementById("who").textContent =
      session.auth ? "key: " + session.key : "auth off";
  }
  for (const [re, page, nav] of routes) {
    const m = hash.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("on", a.dataset.nav === nav);
    show(h("p", { class: "muted" }, "Loading…"));
    const t0 = performance.now();
    try { await page(...m.slice(1)); }
    catch (e) { if (e.status === 401) { session = null; return keyPage(); } return fail(e); }
    mark(hash);
    document.body.dataset.ms = String(Math.round(performance.now() - t0));
    return;
  }
  show(h("p", { class: "error" }, "No such page: " + hash));
}
function fail(e) {
  show(h("p", { class: "error" }, (e.status ? e.status + ": " : "") + e.message));
  mark(location.hash || "#/");
}
function keyPage() {
  const input = h("input", { type: "password", id: "api-key", placeholder: "fs_…", autocomplete: "off" });
  const form = h("form", { class: "keybox", onsubmit: ev => {
    ev.preventDefault(); sessionStorage.setItem(KEY, input.value.trim()); session = null; render();
  } }, h("h1", {}, "API key"),
    h("p", { class: "muted" }, "This server has auth on. Enter an API key; it stays in this browser tab's session only."),
    input, h("button", { type: "submit" }, "Open"));
  if (sessionStorage.getItem(KEY)) form.append(h("p", { class: "error" }, "That key was refused."));
  show(form);
  mark("key");
}
window.addEventListener("hashchange", render);

// ---- Overview ----
async function overviewPage() {
  const data = await api("/ui/api/overview");
  const stale = data.views.filter(v => v.stale).length;
  const bad = data.views.filter(v => v.gate && v.gate.status === "rejected").length;
  const rows = data.views.map(v => [
    link("#/view/" + v.name, v.name),
    h("code", {}, v.version),
    v.online_version ? h("code", { class: v.online_version === v.version ? null : "bad" }, v.online_version) : h("span", { class: "muted" }, v.online ? "not materialized" : "offline only"),
    v.watermark ? v.watermark.slice(0, 19).replace("T", " ") : "–",
    v.freshness_seconds === null ? h("span", { class: "muted" }, "–")
      : h("span", { class: "pill " + (v.stale ? "stale" : "ok"), title: "limit " + age(v.freshness_limit_seconds) }, age(v.freshness_seconds)),
    v.gate ? h("span", {}, pill(v.gate.status), " ", h("span", { class: "muted small" }, v.gate.path)) : pill("no runs", "none"),
    v.gate ? pct(v.gate.bad_fraction) : "–",
    fmt(v.offline_rows),
    link("#/quality/" + v.name, "quality"),
  ]);
  show(
    h("h1", {}, "Overview"),
    h("div", { class: "cards" },
      h("div", { class: "card" }, h("b", {}, data.views.length), "feature views"),
      h("div", { class: "card" }, h("b", {}, data.services.length), "feature services"),
      h("div", { class: "card" }, h("b", { class: stale ? "stale" : null }, stale), "stale past ttl / freshness"),
      h("div", { class: "card" }, h("b", {}, bad), "last gate rejected"),
      h("div", { class: "card" }, h("b", {}, fmt(data.views.reduce((a, v) => a + v.offline_rows, 0))), "rows offline")),
    data.online_available ? null : h("p", { class: "error" }, "The online store does not answer: online versions and freshness are unknown."),
    h("h2", {}, "Feature views"),
    table(["view", "version", "online version", "watermark", "freshness", "last gate", "bad fraction", "rows offline", ""], rows, [6, 7]),
    h("h2", {}, "Feature services"),
    table(["service", "features", "views", "description"], data.services.map(sv => [
      link("#/service/" + sv.name, sv.name), fmt(sv.features),
      h("span", {}, sv.views.map((v, i) => [i ? ", " : "", link("#/view/" + v, v)])), sv.description || ""]), [1]));
}

// ---- View ----
function checkText(c) {
  const p = c.params && Object.keys(c.params).length ? "(" + Object.values(c.params).map(num).join(", ") + ")" : "";
  return c.name || (c.kind + p) || c.repr || JSON.stringify(c);
}
function sourceText(src) {
  if (!src) return "–";
  return [src.kind, src.path || src.query, "timestamp " + src.timestamp, src.created ? "created " + src.created : null].filter(Boolean).join(" · ");
}
function diffValue(v) { return v === null || v === undefined ? h("span", { class: "muted" }, "–") : h("code", {}, typeof v === "object" ? JSON.stringify(v) : String(v)); }

async function viewPage(name) {
  const v = await api("/ui/api/views/" + name);
  const gate = v.gate || {};
  const viewChecks = [].concat((gate.checks || []).map(checkText),
    gate.freshness_seconds ? ["freshness(" + age(gate.freshness_seconds) + ")"] : [],
    gate.unique_key ? ["unique (keys, event time)"] : []);
  const l = v.lineage;
  show(
    h("h1", {}, "View ", name, " ", h("code", {}, "v=" + v.version)),
    h("p", { class: "muted" }, v.description || ""),
    h("div", { class: "cards" },
      h("div", { class: "card" }, h("b", {}, fmt(v.offline_rows)), "rows offline"),
      h("div", { class: "card" }, h("b", {}, v.partitions.length), "partitions"),
      h("div", { class: "card" }, h("b", {}, v.ttl_seconds ? age(v.ttl_seconds) : "none"), "ttl"),
      h("div", { class: "card" }, h("b", {}, v.online_version || "–"), "online version"),
      h("div", { class: "card" }, h("b", {}, gate.policy || "quarantine"), "gate policy")),
    h("h2", {}, "Lineage"),
    h("div", { class: "lineage" },
      h("div", { class: "node" }, h("small", {}, "source"), sourceText(l.source)),
      h("span", { class: "arrow" }, "→"),
      l.transform ? [h("div", { class: "node" }, h("small", {}, "transform"), l.transform), h("span", { class: "arrow" }, "→")] : null,
      h("div", { class: "node" }, h("small", {}, "view"), l.view),
      h("span", { class: "arrow" }, "→"),
      h("div", { class: "stack" }, l.services.length ? l.services.map(sv => h("div", { class: "node" }, h("small", {}, "service"), link("#/service/" + sv, sv))) : h("div", { class: "node muted" }, "no service")),
      h("span", { class: "arrow" }, "→"),
      h("div", { class: "stack" }, l.keys.length ? l.keys.map(k => h("div", { class: "node" }, h("small", {}, "API key (" + k.scope + ")"), k.name)) : h("div", { class: "node muted" }, "no key reads it"))),
    h("h2", {}, "Features"),
    table(["feature", "dtype", "description", "checks"], v.features.map(f => [
      h("b", {}, f.name), h("code", {}, f.dtype), f.description || "",
      h("span", { class: "checks" }, (f.checks || []).map(c => h("code", {}, checkText(c))))])),
    h("p", {}, h("b", {}, "Join keys: "), Object.entries(v.join_keys).map(([k, t]) => k + " (" + t + ")").join(", "),
      h("br"), h("b", {}, "View checks: "), h("span", { class: "checks" }, viewChecks.map(c => h("code", {}, c))),
      gate.max_bad_fraction !== undefined ? " · max bad fraction " + pct(gate.max_bad_fraction) : ""),
    h("h2", {}, "Source and transform"),
    h("p", {}, sourceText(v.source)),
    v.transform ? h("pre", {}, v.transform.text) : h("p", { class: "muted" }, "No transform: source columns are the features."),
    h("h2", {}, "Version history"),
    v.history.length ? h("div", {}, v.history.map(e => h("div", {},
      h("h3", {}, "apply #" + e.serial + " · " + (e.applied_at || "") + " · ", h("code", {}, e.version || "removed"),
        e.previous_version && e.previous_version !== e.version ? h("span", { class: "muted" }, " (was " + e.previous_version + ")") : null),
      e.changes.length ? h("p", { class: "small muted" }, e.changes.join(" · ")) : null,
      e.diff.length ? table(["field", "before", "after"], e.diff.map(d => [d.field, diffValue(d.old), diffValue(d.new)])) : null)))
      : h("p", { class: "muted" }, "No history."),
    h("h2", {}, "Offline partitions"),
    h("p", { class: "small muted" }, v.offline_glob),
    partitionBars(v.partitions),
    table(["date", "rows", "bytes"], v.partitions.slice().reverse().slice(0, 20).map(p => [p.date, fmt(p.rows), fmt(p.bytes)]), [1, 2]),
    v.partitions.length > 20 ? h("p", { class: "muted" }, "… and " + fmt(v.partitions.length - 20) + " older partitions (the chart shows all)") : null);
}
function partitionBars(parts) {
  if (!parts.length) return h("p", { class: "muted" }, "No offline data yet: run `featurestore ingest`.");
  const width = 900, height = 90, top = Math.max(...parts.map(p => p.rows), 1), bw = width / parts.length;
  const svg = s("svg", { width, height: height + 16, role: "img", class: "partitions" });
  parts.forEach((p, i) => svg.append(s("rect", { x: (i * bw).toFixed(2), y: (height - p.rows / top * height).toFixed(1), width: Math.max(bw - (bw > 3 ? 1 : 0), 0.5).toFixed(2), height: (p.rows / top * height).toFixed(1), fill: "#0969da" }, s("title", {}, p.date + ": " + fmt(p.rows) + " rows"))));
  svg.append(s("text", { x: 0, y: height + 13, "font-size": 10 }, parts[0].date));
  svg.append(s("text", { x: width, y: height + 13, "font-size": 10, "text-anchor": "end" }, parts[parts.length - 1].date));
  return h("div", { class: "chart" }, h("div", { class: "small muted" }, "rows per partition (max " + fmt(top) + ")"), svg);
}

// ---- Service (features and skew) ----
async function servicePage(name) {
  const [pg, skew] = await Promise.all([api("/ui/api/playground"), api("/ui/api/skew?target=" + encodeURIComponent(name))]);
  const sv = pg.services[name];
  if (!sv) throw new HttpError(404, "unknown or unreadable feature service " + name);
  show(
    h("h1", {}, "Service ", name),
    h("p", {}, h("b", {}, "Join keys: "), sv.join_keys.join(", ")),
    h("h2", {}, "Features"), h("p", {}, h("span", { class: "checks" }, sv.features.map(f => h("code", {}, f)))),
    h("h2", {}, "Training/serving skew"),
    h("div", {}, skewTables(skew)));
}
function skewTables(reports) {
  if (!reports.length) return h("p", { class: "muted" }, "No skew computed yet: enable log_sample_rate on the server, then run `featurestore skew`.");
  return reports.map(r => {
    const sk = r.skew || {};
    return h("div", {},
      h("h3", {}, r.view, " ", pill(r.status), h("span", { class: "muted small" }, " " + (r.time || "").slice(0, 19) + " · " + fmt(sk.served_rows) + " served rows since " + (sk.since || "the start") + " · training set " + (sk.training_set || "none"))),
      table(["feature", "PSI vs training", "PSI vs offline profile", "served nulls", "trained nulls", "NOT_FOUND", "OUTSIDE_MAX_AGE"],
        (sk.features || []).map(f => [f.feature,
          f.psi_training === null ? "–" : h("span", { class: f.psi_training > (sk.threshold || 1e9) ? "pill drift" : null }, num(f.psi_training)),
          f.psi_profile === null ? "–" : num(f.psi_profile),
          pct(f.null_served), pct(f.null_trained), pct(f.not_found), pct(f.outside_max_age)]), [1, 2, 3, 4, 5, 6]));
  });
}

// ---- Data quality ----
async function qualityIndex() {
  const data = await api("/ui/api/overview");
  show(h("h1", {}, "Data quality"),
    table(["view", "last gate", "path", "bad fraction", "when"], data.views.map(v => [
      link("#/quality/" + v.name, v.name), v.gate ? pill(v.gate.status) : pill("no runs", "none"),
      v.gate ? v.gate.path : "–", v.gate ? pct(v.gate.bad_fraction) : "–", v.gate ? (v.gate.time || "").slice(0, 19).replace("T", " ") : "–"]), [3]));
}
const COLORS = { rows_checked: "#0969da", rows_written: "#1a7f37", rows_quarantined: "#cf222e", bad_fraction: "#8250df" };
function lineChart(points, series, title, width, height, asPct) {
  width = width || 520; height = height || 180;
  const pad = { l: 58, r: 12, t: 22, b: 26 };
  const all = points.flatMap(p => series.map(k => p[k] || 0));
  const top = Math.max(...all, asPct ? 0.0001 : 1);
  const x = i => pad.l + (points.length < 2 ? (width - pad.l - pad.r) / 2 : i * (width - pad.l - pad.r) / (points.length - 1));
  const y = v => pad.t + (height - pad.t - pad.b) * (1 - (v || 0) / top);
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" },
    s("text", { x: pad.l, y: 14, "font-size": 12, "font-weight": 600 }, title),
    s("line", { x1: pad.l, y1: y(0), x2: width - pad.r, y2: y(0), stroke: "#d0d7de" }),
    s("line", { x1: pad.l, y1: pad.t, x2: pad.l, y2: y(0), stroke: "#d0d7de" }),
    s("text", { x: pad.l - 6, y: pad.t + 4, "font-size": 10, "text-anchor": "end" }, asPct ? pct(top) : fmt(top)),
    s("text", { x: pad.l - 6, y: y(0), "font-size": 10, "text-anchor": "end" }, "0"));
  if (points.length) {
    svg.append(s("text", { x: pad.l, y: height - 6, "font-size": 10 }, (points[0].time || "").slice(0, 16).replace("T", " ")));
    svg.append(s("text", { x: width - pad.r, y: height - 6, "font-size": 10, "text-anchor": "end" }, (points[points.length - 1].time || "").slice(0, 16).replace("T", " ")));
  }
  for (const k of series) {
    const pts = points.map((p, i) => `${x(i).toFixed(1)},${y(p[k]).toFixed(1)}`).join(" ");
    svg.append(s("polyline", { points: pts, fill: "none", stroke: COLORS[k], "stroke-width": 2 }));
    points.forEach((p, i) => svg.append(s("circle", { cx: x(i).toFixed(1), cy: y(p[k]).toFixed(1), r: 3, fill: COLORS[k] },
      s("title", {}, `${p.time} ${p.path} ${p.status}: ${k} ${asPct ? pct(p[k]) : fmt(p[k])}`))));
  }
  return svg;
}
function legend(keys) { return h("div", { class: "legend" }, keys.map(k => h("span", {}, h("i", { style: "background:" + COLORS[k] }), k.replace("_", " ")))); }
function histogram(hst, color, title, width) {
  width = width || 300; const height = 110;
  const svg = s("svg", { width, height: height + 28, role: "img" }, s("text", { x: 0, y: 12, "font-size": 11, "font-weight": 600 }, title));
  if (!hst || !hst.counts || !hst.counts.length) { svg.append(s("text", { x: 0, y: 40, "font-size": 11 }, "no data")); return svg; }
  const total = hst.counts.reduce((a, b) => a + b, 0) + (hst.under || 0) + (hst.over || 0) || 1;
  const shares = hst.counts.map(c => c / total);
  const top = Math.max(...shares, 1e-9); const bw = width / shares.length;
  shares.forEach((v, i) => svg.append(s("rect", { x: (i * bw).toFixed(1), y: (16 + height - v / top * (height - 16)).toFixed(1), width: Math.max(bw - 1, 1).toFixed(1), height: (v / top * (height - 16)).toFixed(1), fill: color },
    s("title", {}, `${num(hst.edges[i])} – ${num(hst.edges[i + 1])}: ${pct(v)}`))));
  svg.append(s("text", { x: 0, y: height + 14, "font-size": 10 }, num(hst.edges[0])));
  svg.append(s("text", { x: width, y: height + 14, "font-size": 10, "text-anchor": "end" }, num(hst.edges[hst.edges.length - 1])));
  svg.append(s("text", { x: width / 2, y: height + 26, "font-size": 10, "text-anchor": "middle" }, `under ${num(hst.under || 0)} · over ${num(hst.over || 0)}`));
  return svg;
}

async function qualityPage(name) {
  const q = await api("/ui/api/quality/" + name);
  const paths = [...new Set(q.series.map(p => p.path))];
  const last = q.last;
  const charts = paths.map(p => {
    const pts = q.series.filter(x => x.path === p);
    return h("div", {}, h("h3", {}, "write path: " + p + " (" + pts.length + " runs)"),
      h("div", { class: "charts" },
        h("div", { class: "chart" }, lineChart(pts, ["rows_checked", "rows_written", "rows_quarantined"], "rows per run"), legend(["rows_checked", "rows_written", "rows_quarantined"])),
        h("div", { class: "chart" }, lineChart(pts, ["bad_fraction"], "bad fraction", 380, 180, true), legend(["bad_fraction"]))));
  });
  const qbox = h("div", { id: "quarantine" });
  const checkSel = h("select", { id: "q-check" }, h("option", { value: "" }, "every check"), q.checks.map(c => h("option", { value: c.check }, c.label)));
  const runSel = h("select", { id: "q-run" }, h("option", { value: "" }, "every run"), q.quarantine_runs.map(r => h("option", { value: r }, r)));
  let offset = 0; const limit = 25;
  async function loadPage() {
    const params = new URLSearchParams({ offset, limit });
    if (checkSel.value) params.set("check", checkSel.value);
    if (runSel.value) params.set("run", runSel.value);
    let page;
    try {
      page = await api("/ui/api/quarantine/" + name + "?" + params);
    } catch (err) {
      if (!(err instanceof HttpError) || err.status !== 403) throw err;
      qbox.replaceChildren(h("p", { class: "muted" }, err.message));
      qbox.dataset.denied = "1";
      return;
    }
    const prev = h("button", { class: "plain", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - limit); loadPage(); } }, "← previous");
    const next = h("button", { class: "plain", disabled: offset + limit >= page.total, onclick: () => { offset += limit; loadPage(); } }, "next →");
    qbox.replaceChildren(
      h("div", { class: "inline" }, prev, next, h("span", { class: "muted" },
        page.total ? `rows ${fmt(offset + 1)}–${fmt(Math.min(offset + limit, page.total))} of ${fmt(page.total)}` : "no quarantined rows")),
      page.rows.length ? table(page.columns, page.rows.map(r => r.map((c, i) => h("span", { class: page.columns[i] === "_value" ? "pill bad" : null }, num(c))))) : null);
    qbox.dataset.total = String(page.total);
    qbox.dataset.loaded = [checkSel.value, runSel.value, offset].join("|");
  }
  checkSel.addEventListener("change", () => { offset = 0; loadPage(); });
  runSel.addEventListener("change", () => { offset = 0; loadPage(); });
  const d = q.drift;
  show(
    h("h1", {}, "Data quality: ", link("#/view/" + name, name), " ", h("code", {}, "v=" + q.version)),
    last ? h("p", {}, pill(last.status), " ", last.message || "") : h("p", { class: "muted" }, "No gate runs yet."),
    h("h2", {}, "Gate report history"),
    charts.length ? h("div", {}, charts) : h("p", { class: "muted" }, "No reports."),
    h("h2", {}, "Failures per check"),
    q.checks.length ? table(["check", "column", "rows failed (all runs)", "runs", "last run"], q.checks.map(c => [h("code", {}, c.check), c.column || "(batch)", fmt(c.rows), fmt(c.runs), c.last_run || ""]), [2, 3])
      : h("p", { class: "muted" }, "No check has failed."),
    h("h2", {}, "Quarantine"),
    h("div", { class: "inline" }, h("label", {}, "check ", checkSel), h("label", {}, "run ", runSel)),
    qbox,
    h("h2", {}, "Drift against the baseline"),
    d.status !== "ok" ? h("p", { class: "muted" }, d.message) : h("div", {},
      h("p", { class: "small muted" }, `baseline: ${fmt(d.baseline_rows)} rows (${(d.baseline_created || "").slice(0, 19)}) · batch: run ${d.batch_run || "–"}`),
      h("div", { class: "legend" }, h("span", {}, h("i", { style: "background:#8c959f" }), "baseline"), h("span", {}, h("i", { style: "background:#0969da" }), "latest ingest")),
      d.features.map(f => h("div", { class: "hist" },
        h("div", { class: "name" }, h("b", {}, f.feature), h("br"), "PSI ", f.psi === null ? "–" : h("span", { class: "pill " + (f.psi > (d.threshold || 0.25) ? "drift" : "ok") }, num(f.psi))),
        histogram(f.baseline, "#8c959f", "baseline"), histogram(f.batch, "#0969da", "latest ingest")))),
    h("h2", {}, "Training/serving skew"),
    h("div", {}, skewTables(q.skew || [])));
  await loadPage();
}

// ---- Training sets ----
async function trainingPage() {
  const sets = await api("/ui/api/training-sets");
  show(h("h1", {}, "Training sets"),
    sets.length ? h("div", {}, sets.map(t => h("div", {},
      h("h2", {}, t.output || t.manifest),
      table(["created", "features", "entity file", "entity rows", "rows", "views (version, files)"], [[
        (t.created_at || "").replace("T", " "), (t.features || []).join(", "), t.entities || "", fmt(t.entity_rows), fmt(t.rows),
        Object.entries(t.views).map(([n, v]) => `${n} v=${v.version} (${v.files})`).join(", ")]], [3, 4]),
      h("pre", {}, t.rebuild)))) : h("p", { class: "muted" }, "No saved training sets: pass out= to get_training_set (or --out) to save one with its manifest."));
}

// ---- Lookup playground ----
async function playgroundPage() {
  const pg = await api("/ui/api/playground");
  const kind = h("select", { id: "pg-kind" }, Object.keys(pg.services).map(n => h("option", { value: "service:" + n }, "service " + n)),
    Object.keys(pg.views).map(n => h("option", { value: "view:" + n }, "view " + n)));
  const form = h("div", { id: "pg-form" });
  const out = h("div", { id: "pg-out" });
  function build() {
    const [k, name] = kind.value.split(":");
    const spec = k === "service" ? pg.services[name] : pg.views[name];
    const inputs = spec.join_keys.map(j => h("label", {}, j + " ", h("input", { name: j, "data-key": j, placeholder: "values, comma-separated", size: 18 })));
    const feats = k === "view" ? h("div", { class: "inline" }, spec.features.map(f => h("label", {}, h("input", { type: "checkbox", value: f, checked: true, "data-feature": f }), " " + f))) : null;
    form.replaceChildren(h("div", { class: "inline" }, inputs), feats, h("button", { id: "pg-go", onclick: lookup }, "Look up"));
    out.replaceChildren();
  }
  async function lookup() {
    const [k, name] = kind.value.split(":");
    const entities = {};
    for (const inp of form.querySelectorAll("input[data-key]")) {
      entities[inp.dataset.key] = inp.value.split(",").map(x => x.trim()).filter(x => x !== "").map(x => /^-?\d+$/.test(x) ? Number(x) : x);
    }
    const body = { entities };
    if (k === "service") body.feature_service = name;
    else body.features = [...form.querySelectorAll("input[data-feature]:checked")].map(i => name + ":" + i.value);
    const json = JSON.stringify(body);
    const keyHeader = session.auth ? ` -H 'X-API-Key: $FEATURESTORE_API_KEY'` : "";
    const curl = `curl -s ${location.origin}/get-online-features -H 'Content-Type: application/json'${keyHeader} -d '${json}'`;
    const ref = k === "service" ? JSON.stringify(name) : JSON.stringify(body.features);
    const py = (session.auth ? "import os\n" : "") + `from featurestore.client import FeatureClient\n\nclient = FeatureClient("${location.origin}"${session.auth ? ", headers={\"X-API-Key\": os.environ[\"FEATURESTORE_API_KEY\"]}" : ""})\nresult = client.get_online_features(${ref}, ${JSON.stringify(entities)})\nprint(result.to_dict(), result.statuses())`;
    try {
      const r = await api("/get-online-features", { method: "POST", headers: { "Content-Type": "application/json" }, body: json });
      const names = r.metadata.feature_names;
      const n = r.results.length ? r.results[0].values.length : 0;
      const rows = [];
      for (let e = 0; e < n; e++) for (let i = 0; i < names.length; i++) {
        const res = r.results[i];
        rows.push([e + 1, names[i], h("span", { class: "val" }, num(res.values[e])), pill(res.statuses[e]), res.event_timestamps[e]]);
      }
      out.replaceChildren(h("h2", {}, "Result"), table(["entity", "feature", "value", "status", "event time"], rows), h("h2", {}, "curl"), h("pre", {}, curl), h("h2", {}, "Python"), h("pre", {}, py));
    } catch (e) {
      out.replaceChildren(h("p", { class: "error" }, e.status + ": " + e.message), h("h2", {}, "curl"), h("pre", {}, curl));
    }
  }
  kind.addEventListener("change", build);
  show(h("h1", {}, "Lookup playground"), h("div", { class: "inline" }, h("label", {}, "features of ", kind)), form, out);
  if (kind.options.length) build(); else form.append(h("p", { class: "muted" }, "Nothing this key may read."));
}

render();
