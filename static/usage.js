/* The service page's usage panel: fetches the console's usage JSON for the chosen window and
   draws it with uPlot (static/vendor/uplot), lists the operations, and says so when the
   service was throttled. No build step; runs after uPlot (both deferred, in order). */
(function () {
  "use strict";
  const panel = document.getElementById("usage");
  if (!panel || typeof uPlot === "undefined") return;
  const state = document.getElementById("usage-state");
  const charts = {};
  let current = "hour";

  const fmt = (v, digits) => (v == null ? "—" : Number(v).toLocaleString(undefined, { maximumFractionDigits: digits ?? 1 }));
  const mb = (bytes) => (bytes == null ? null : bytes / (1024 * 1024));

  function el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text != null) node.textContent = text;
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  function draw(id, data, series, opts) {
    const target = document.getElementById(id);
    if (charts[id]) { charts[id].destroy(); delete charts[id]; }
    const width = Math.max(320, target.clientWidth || target.parentElement.clientWidth - 16);
    charts[id] = new uPlot(Object.assign({
      width: width, height: 200,
      series: [{}].concat(series),
      axes: [{}, { size: 60 }],
      scales: { x: { time: true } },
      legend: { live: true },
    }, opts || {}), data, target);
    target.dataset.points = String(data[0].length);
    target.dataset.drawn = series.map((s, i) => data[i + 1].filter((v) => v != null && v !== 0).length).join(",");
  }

  function banner(usage) {
    const box = document.getElementById("usage-throttled");
    const t = usage.throttling || {};
    const hour = t.lastHour || {};
    if (!hour.throttled && !hour.refused) { box.hidden = true; return; }
    const limits = usage.limits;
    const parts = [];
    if (hour.throttled) parts.push(`${hour.throttled} request${hour.throttled === 1 ? " was" : "s were"} delayed by the throttle`);
    if (hour.refused) parts.push(`${hour.refused} refused (code 1004: too many waiting)`);
    let text = `This service was throttled in the last hour: ${parts.join(", ")}.`;
    if ((t.recentThrottledBy || []).length) text += ` Recent Throttled-By values: ${t.recentThrottledBy.map((v) => v + "ms").join(", ")}.`;
    if (limits) text += ` A sandbox service runs ${limits.requests} requests per ${limits.windowSeconds} s; past that requests wait (up to ${limits.queue}), then are refused. This is the limit, not slowness.`;
    box.textContent = text;
    box.classList.toggle("refused", !!hour.refused);
    box.hidden = false;
  }

  function totals(usage) {
    const list = document.getElementById("usage-totals");
    list.replaceChildren();
    const s = usage.storage || {};
    const items = [
      ["Requests", fmt(usage.totals.requests, 0)],
      ["Errors", fmt(usage.totals.errors, 0)],
      ["Throttled", fmt(usage.totals.throttled, 0)],
      ["Refused (1004)", fmt(usage.totals.refused, 0)],
      ["Writes refused (1003)", fmt(usage.totals.storageRefused, 0)],
      ["p50", usage.totals.p50 == null ? "—" : fmt(usage.totals.p50) + " ms"],
      ["p95", usage.totals.p95 == null ? "—" : fmt(usage.totals.p95) + " ms"],
    ];
    const now = s.bytesNow ?? s.bytes;
    if (now != null) {
      let text = fmt(mb(now), 2) + " MB";
      if (s.capBytes) text += ` of ${fmt(mb(s.capBytes), 0)} MB (${fmt((100 * now) / s.capBytes, 0)}%)`;
      items.push(["Storage", text]);
    }
    for (const [label, value] of items) {
      const div = el("div");
      div.append(el("dt", label), el("dd", value));
      list.append(div);
    }
    const storage = list.lastElementChild;
    if (now != null && s.capBytes && now >= 0.8 * s.capBytes) storage.querySelector("dd").classList.add("usage-warn");
    list.hidden = false;
  }

  function insights(usage) {
    const body = document.querySelector("#usage-insights tbody");
    body.replaceChildren();
    for (const op of usage.operations || []) {
      const row = el("tr", null, { "data-operation": op.name || op.document });
      const label = op.name ? op.name : op.document;
      row.append(el("td", label, { title: op.document, class: op.name ? "" : "mono" }), el("td", fmt(op.count, 0)),
        el("td", fmt(op.errors, 0)), el("td", op.p50 == null ? "—" : fmt(op.p50) + " ms"), el("td", op.p95 == null ? "—" : fmt(op.p95) + " ms"));
      row.addEventListener("click", () => {
        document.getElementById("usage-document-title").textContent = op.name || "Anonymous operation";
        document.getElementById("usage-document-text").textContent = op.document || "(operations past this service's per-minute cap, added up)";
        document.getElementById("usage-document").showModal();
      });
      body.append(row);
    }
    if (!body.children.length) body.append(el("tr")).append(el("td", "No operations in this window.", { colspan: "5", class: "muted" }));
    document.getElementById("usage-insights").hidden = false;
  }

  function render(usage) {
    const s = usage.series;
    const perMinute = usage.bucketSeconds / 60;
    const rate = (values) => values.map((v) => (v == null ? null : v / perMinute));
    document.getElementById("usage-charts").hidden = false;
    draw("chart-requests", [s.time, rate(s.requests), rate(s.errors)], [
      { label: "requests/min", stroke: "#3b5bdb", fill: "rgba(59,91,219,.08)", width: 2 },
      { label: "errors/min", stroke: "#c92a2a", width: 1.5 },
    ]);
    draw("chart-throttle", [s.time, s.throttled, s.refused, s.storageRefused], [
      { label: "delayed", stroke: "#e67700", width: 2 },
      { label: "refused (1004)", stroke: "#c92a2a", width: 2 },
      { label: "writes refused (1003)", stroke: "#862e9c", width: 1.5 },
    ]);
    draw("chart-latency", [s.time, s.p50, s.p95], [
      { label: "p50 ms", stroke: "#2b8a3e", width: 2, spanGaps: true, points: { show: true, size: 6 } },
      { label: "p95 ms", stroke: "#e67700", width: 2, spanGaps: true, points: { show: true, size: 6 } },
    ]);
    const cap = usage.storage && usage.storage.capBytes;
    // Storage is sampled when the server measures it (for its cap); the last point is now.
    const now = usage.storage && usage.storage.bytesNow;
    const samples = s.storageBytes.slice();
    if (now != null && samples.length) samples[samples.length - 1] = now;
    const storage = [s.time, samples.map(mb)];
    const storageSeries = [{ label: "MB", stroke: "#1c4f82", width: 2, spanGaps: true, points: { show: true, size: 6 } }];
    if (cap) {
      storage.push(s.time.map(() => mb(cap)));
      storageSeries.push({ label: "cap MB", stroke: "#c92a2a", dash: [6, 4], width: 1 });
      document.getElementById("storage-caption").textContent = `Storage (MB) against the ${fmt(mb(cap), 0)} MB cap`;
    }
    draw("chart-storage", storage, storageSeries, { scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max || 0, 1) * 1.1] } } });
  }

  async function load(windowName) {
    current = windowName;
    for (const button of panel.querySelectorAll("[data-window]")) button.setAttribute("aria-pressed", String(button.dataset.window === windowName));
    state.textContent = "Loading usage…";
    state.hidden = false;
    panel.dataset.loaded = "";
    let usage;
    try {
      const answer = await fetch(`${panel.dataset.usageUrl}?window=${windowName}`, { headers: { Accept: "application/json" } });
      usage = await answer.json();
      if (!answer.ok) throw new Error(usage.error || `HTTP ${answer.status}`);
    } catch (error) {
      state.textContent = `Usage could not be loaded: ${error.message}`;
      return;
    }
    if (windowName !== current) return;
    if (!usage.available) {
      state.textContent = usage.reason;
      for (const id of ["usage-charts", "usage-insights", "usage-totals", "usage-throttled"]) document.getElementById(id).hidden = true;
      panel.dataset.loaded = "unavailable";
      return;
    }
    state.hidden = true;
    banner(usage);
    totals(usage);
    render(usage);
    insights(usage);
    panel.dataset.loaded = windowName;
  }

  for (const button of panel.querySelectorAll("[data-window]")) button.addEventListener("click", () => load(button.dataset.window));
  load("hour");
})();
