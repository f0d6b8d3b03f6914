// edgeshadow dashboard: polls the JSON API of host_tools/dashboard and redraws; read-only.
"use strict";
const TOKEN = new URLSearchParams(location.search).get("token");
const SEVERITY = ["critical", "major", "warning", "minor", "info"];
const SPAN_COLOUR = {critical: "rgba(176,0,32,0.18)", major: "rgba(210,69,43,0.15)",
                     warning: "rgba(230,160,0,0.15)", minor: "rgba(230,160,0,0.1)", info: "rgba(90,90,90,0.1)"};
const view = {thing: null, span: 3600, follow: true, since: null, until: null, units: {}, busy: false, again: false};

function api(path) {
  const url = TOKEN ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN) : path;
  return fetch(url, {cache: "no-store"}).then(r => r.ok ? r.json() : r.json().then(e => Promise.reject(new Error(e.error || r.status))));
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function ago(now, t) {
  if (t === null || t === undefined) return "never";
  const s = Math.max(0, now - t);
  return s < 90 ? s.toFixed(0) + " s ago" : s < 5400 ? (s / 60).toFixed(0) + " min ago" : (s / 3600).toFixed(1) + " h ago";
}

function heapText(d) {  // the firmware's GC heap as the shadow reports it: {size, free, min_free}
  const h = d.heap || {};
  if (typeof h.free !== "number") return "-";
  const k = n => Math.round(n / 1024) + "K";
  return k(h.free) + " free" + (typeof h.min_free === "number" ? " (low " + k(h.min_free) + ")" : "")
         + (typeof h.size === "number" ? " of " + k(h.size) : "");
}

function renderFleet(snap) {
  const body = document.querySelector("#fleet tbody");
  body.textContent = "";
  const things = Object.keys(snap.devices);
  if (!things.length) {
    const tr = el("tr"); const td = el("td", snap.waiting || "no device heard yet", "dim"); td.colSpan = 8;
    tr.append(td); body.append(tr); return;
  }
  for (const thing of things) {
    const d = snap.devices[thing];
    const tr = el("tr"); tr.dataset.thing = thing;
    if (thing === view.thing) tr.className = "selected";
    tr.append(el("td", thing), el("td", d.connected ? "connected" : "offline", d.connected ? "ok" : "offline"),
              el("td", ago(snap.now, d.last_seen)));
    const alerts = el("td");
    const bySev = {};
    for (const a of d.alerts) (bySev[a.severity] = bySev[a.severity] || []).push(a);
    for (const sev of SEVERITY.concat(Object.keys(bySev).filter(s => !SEVERITY.includes(s)))) {
      if (!bySev[sev]) continue;
      const line = el("div", sev + ": " + bySev[sev].map(a => a.metric + " " + a.rule).join(", "), "sev-" + sev);
      alerts.append(line);
    }
    if (!d.alerts.length) alerts.textContent = "-";
    const diag = d.diagnoses.map(x => typeof x === "object" ? x.name + (x.confidence !== undefined ? " (" + x.confidence + ")" : "") : String(x));
    const values = Object.keys(d.values).sort().map(m => m + " " + (d.values[m] === null ? "no value"
                     : d.values[m] + (d.units[m] ? " " + d.units[m] : "")) + (d.status[m] ? " (" + d.status[m] + ")" : ""));
    Object.assign(view.units, d.units);
    tr.append(alerts, el("td", diag.join(", ") || "-"),
              el("td", d.spool && d.spool.backlog !== undefined ? String(d.spool.backlog) + (d.spool.dropped ? " (dropped " + d.spool.dropped + ")" : "") : "-"),
              el("td", heapText(d)), el("td", values.join("; ") || "-"));
    tr.addEventListener("click", () => openDevice(thing));
    body.append(tr);
  }
}

function openDevice(thing) {
  view.thing = thing; view.follow = true;
  document.getElementById("device").hidden = false;
  document.getElementById("device-name").textContent = thing;
  document.getElementById("plots").textContent = "";
  for (const tr of document.querySelectorAll("#fleet tbody tr")) tr.classList.toggle("selected", tr.dataset.thing === thing);
  loadDevice();
}

function windowNow() {
  if (view.follow) { view.until = Date.now() / 1000; view.since = view.until - view.span; }
  return [view.since, view.until];
}

function traces(m, s) {
  const x = s.t.map(t => t * 1000);
  const out = [];
  if (s.min) {  // rollups: the min..max band behind the mean
    out.push({x, y: s.max, mode: "lines", line: {width: 0}, hoverinfo: "skip", showlegend: false, name: "max"});
    out.push({x, y: s.min, mode: "lines", line: {width: 0}, fill: "tonexty", fillcolor: "rgba(29,53,87,0.15)",
              hoverinfo: "skip", showlegend: false, name: "min"});
  }
  out.push({x, y: s.v, mode: s.t.length < 60 ? "lines+markers" : "lines", connectgaps: false,
            line: {color: "#1d3557", width: 1.5}, name: m, showlegend: false});
  return out;
}

function layout(m, s, alerts, since, until) {
  const shapes = [], annotations = [];
  for (const lim of s.limits) {
    shapes.push({type: "line", xref: "paper", x0: 0, x1: 1, y0: lim.value, y1: lim.value,
                 line: {color: lim.severity === "critical" ? "#b00020" : "#a66b00", dash: "dash", width: 1}});
    annotations.push({xref: "paper", x: 1, y: lim.value, text: lim.label, showarrow: false, xanchor: "right",
                      yanchor: "bottom", font: {size: 10, color: "#666"}});
  }
  for (const a of alerts) {
    if (a.metric !== m) continue;
    shapes.push({type: "rect", xref: "x", yref: "paper", x0: Math.max(a.start, since) * 1000,
                 x1: (a.end === null ? until : a.end) * 1000, y0: 0, y1: 1, line: {width: 0},
                 fillcolor: SPAN_COLOUR[a.severity] || SPAN_COLOUR.info, layer: "below"});
  }
  const unit = view.units[m] ? " (" + view.units[m] + ")" : "";
  return {title: {text: m + unit, font: {size: 13}, x: 0.01}, margin: {l: 60, r: 10, t: 28, b: 30},
          xaxis: {type: "date", range: [since * 1000, until * 1000]}, yaxis: {automargin: true},
          shapes, annotations, uirevision: view.thing};
}

function loadDevice() {
  if (!view.thing) return;
  if (view.busy) { view.again = true; return; }  // a zoom or range click during a load: load once more after it
  view.again = false;
  const [since, until] = windowNow();
  const thing = view.thing;
  view.busy = true;
  api("/api/device/" + encodeURIComponent(thing) + "?since=" + since + "&until=" + until).then(r => {
    if (thing !== view.thing) return;
    document.getElementById("resolution").textContent = "resolution " + r.resolution + (view.follow ? ", live" : "");
    const plots = document.getElementById("plots");
    for (const [m, s] of Object.entries(r.metrics)) {
      let div = document.getElementById("plot-" + m);
      if (!div) {
        div = el("div", null, "plot"); div.id = "plot-" + m; plots.append(div);
        Plotly.newPlot(div, [], {}, {displaylogo: false, responsive: true});
        div.on("plotly_relayout", ev => zoomed(ev));
      }
      Plotly.react(div, traces(m, s), layout(m, s, r.alerts, r.since, r.until), {displaylogo: false, responsive: true});
      div.dataset.resolution = r.resolution;
    }
    document.body.dataset.loaded = String(Date.now());
  }).catch(e => problem(e)).finally(() => { view.busy = false; if (view.again) loadDevice(); });
}

// Plotly keeps date axes in UTC and reports a zoom as "YYYY-MM-DD hh:mm:ss.sss" without a zone.
function plotlyTime(x) {
  return typeof x === "number" ? x / 1000 : new Date(String(x).replace(" ", "T") + "Z").getTime() / 1000;
}

function zoomed(ev) {
  if (ev["xaxis.autorange"]) { view.follow = true; loadDevice(); return; }
  const a = ev["xaxis.range[0]"], b = ev["xaxis.range[1]"];
  if (a === undefined || b === undefined) return;
  view.follow = false;
  view.since = plotlyTime(a); view.until = plotlyTime(b);
  loadDevice();
}

function problem(e) { document.getElementById("problem").textContent = e ? String(e.message || e) : ""; }

function refresh() {
  api("/api/fleet").then(snap => { problem(null); renderFleet(snap);
    document.getElementById("clock").textContent = new Date(snap.now * 1000).toISOString().slice(0, 19) + "Z"; })
    .catch(problem);
  if (view.follow) loadDevice();
}

for (const b of document.querySelectorAll("#ranges button")) {
  b.addEventListener("click", () => {
    view.span = Number(b.dataset.span); view.follow = true;
    for (const o of document.querySelectorAll("#ranges button")) o.classList.toggle("active", o === b);
    loadDevice();
  });
}
refresh();
setInterval(refresh, 2000);
