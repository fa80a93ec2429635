// Scalar charts with uPlot: one chart per title, series overlaid, x by iteration, time or
// relative time, smoothing, log scale, and zoom by dragging. The server sends each pixel
// column's first, last, lowest and highest points (every point once zoomed in enough), so
// no spike is lost; a zoom asks the server again for the new range.
// Also draws plotly line/scatter figures and histograms reported by a run, and tables.
"use strict";

(function () {
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf"];
  const controls = { x: "iteration", smooth: 0, log: false };
  const charts = [];

  function color(i) { return COLORS[i % COLORS.length]; }

  // series: [{name, x: [...], y: [...]}] -> uPlot's aligned data (one x array, nulls between).
  function aligned(series) {
    if (!series.length) return [[]];
    return uPlot.join(series.map((s) => [s.x, s.y]));
  }

  class Chart {
    constructor(figure) {
      this.figure = figure;
      this.body = figure.querySelector(".chart-body");
      this.errorBox = figure.querySelector(".chart-error");
      this.range = null;
      this.plot = null;
    }

    url() {
      const params = new URLSearchParams({
        title: this.figure.dataset.title, x: controls.x, smooth: String(controls.smooth),
        width: String(Math.max(200, Math.round(this.body.clientWidth || 800))),
      });
      if (this.figure.dataset.ids) params.set("ids", this.figure.dataset.ids);
      if (this.range) { params.set("xmin", this.range[0]); params.set("xmax", this.range[1]); }
      return `${this.figure.dataset.url}?${params}`;
    }

    async load() {
      this.figure.dataset.state = "loading";
      try {
        const data = await etude.api(this.url());
        this.draw(data.series);
        this.errorBox.hidden = true;
      } catch (error) {
        this.errorBox.textContent = `Could not draw this chart: ${error.message}`;
        this.errorBox.hidden = false;
        this.figure.dataset.state = "error";
      }
    }

    draw(series) {
      const data = aligned(series);
      if (controls.log) {
        for (let i = 1; i < data.length; i++) data[i] = data[i].map((v) => (v !== null && v > 0 ? v : null));
      }
      const width = Math.max(200, this.body.clientWidth || 800);
      const options = {
        width, height: 260,
        scales: { x: { time: controls.x === "time" }, y: { distr: controls.log ? 3 : 1 } },
        series: [{ label: controls.x }].concat(series.map((s, i) => ({
          label: s.name, stroke: color(i), width: 1.25, spanGaps: true, points: { show: false },
        }))),
        axes: [{}, { size: 60 }],
        cursor: { drag: { x: true, y: false, setScale: false } },
        legend: { live: true },
        hooks: { setSelect: [(u) => this.zoomed(u)] },
      };
      if (this.range) options.scales.x.range = () => this.range;
      if (this.plot) this.plot.destroy();
      this.plot = new uPlot(options, data, this.body);
      const points = series.reduce((n, s) => n + s.x.length, 0);
      this.figure.dataset.points = String(points);
      this.figure.dataset.reduced = series.some((s) => s.reduced) ? "yes" : "no";
      this.figure.dataset.state = "drawn";
    }

    zoomed(u) {
      if (u.select.width < 5) return;
      const min = u.posToVal(u.select.left, "x");
      const max = u.posToVal(u.select.left + u.select.width, "x");
      u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
      this.range = [min, max];
      this.load();
    }
  }

  async function plotly(figure) {
    const body = figure.querySelector(".chart-body");
    const errorBox = figure.querySelector(".chart-error");
    try {
      const fig = await etude.api(figure.dataset.src);
      const traces = (fig.data || []).filter((t) => Array.isArray(t.y) &&
        (t.type === undefined || t.type === "scatter" || t.type === "scattergl"));
      if (!traces.length) throw new Error("no line or scatter trace to draw; download the JSON");
      const series = traces.map((t, i) => ({
        name: t.name || `trace ${i}`, y: t.y.map(Number),
        x: Array.isArray(t.x) && t.x.every((v) => typeof v === "number") ? t.x : t.y.map((_, j) => j),
      }));
      const scatter = traces.map((t) => t.mode === "markers");
      new uPlot({
        width: Math.max(200, body.clientWidth || 600), height: 260, scales: { x: { time: false } },
        series: [{}].concat(series.map((s, i) => ({
          label: s.name, stroke: color(i), spanGaps: true,
          paths: scatter[i] ? () => null : undefined, points: { show: scatter[i], size: 4 },
        }))),
      }, aligned(series), body);
      figure.dataset.state = "drawn";
    } catch (error) {
      errorBox.textContent = `Could not draw this figure: ${error.message}`;
      errorBox.hidden = false;
    }
  }

  async function histogram(figure) {
    const body = figure.querySelector(".chart-body");
    try {
      const data = await etude.api(figure.dataset.src);
      const edges = data.edges || [], counts = data.counts || [];
      new uPlot({
        width: Math.max(200, body.clientWidth || 600), height: 200, scales: { x: { time: false } },
        series: [{}, { label: "count", stroke: color(0), fill: "rgba(31,119,180,0.2)",
          paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } }],
      }, [edges, counts.concat([counts.length ? counts[counts.length - 1] : 0])], body);
      figure.dataset.state = "drawn";
    } catch (error) {
      const box = figure.querySelector(".chart-error");
      box.textContent = `Could not draw this histogram: ${error.message}`;
      box.hidden = false;
    }
  }

  async function table(figure) {
    const body = figure.querySelector(".table-body");
    try {
      const data = await etude.api(figure.dataset.src);
      const columns = data.columns || [];
      const rows = (data.rows || []).slice(0, 500);
      body.replaceChildren(etude.el("table", { class: "grid" },
        etude.el("thead", {}, etude.el("tr", {}, ...columns.map((c) => etude.el("th", {}, c)))),
        etude.el("tbody", {}, ...rows.map((r) => etude.el("tr", {},
          ...(Array.isArray(r) ? r : columns.map((c) => r[c])).map((v) => etude.el("td", {}, etude.fmt(v))))))));
    } catch (error) {
      body.replaceChildren(etude.el("p", { class: "error" }, `Could not read this table: ${error.message}`));
    }
  }

  function reloadAll(resetRange) {
    for (const chart of charts) {
      if (resetRange) chart.range = null;
      chart.load();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const figure of document.querySelectorAll("figure.chart")) charts.push(new Chart(figure));
    reloadAll(false);
    for (const figure of document.querySelectorAll("figure.plotly")) plotly(figure);
    for (const figure of document.querySelectorAll("figure.histogram")) histogram(figure);
    for (const figure of document.querySelectorAll("figure.table-event")) table(figure);
    const x = document.getElementById("chart-x");
    if (!x) return;
    x.addEventListener("change", () => { controls.x = x.value; reloadAll(true); });
    const smooth = document.getElementById("chart-smooth");
    const shown = document.getElementById("chart-smooth-value");
    smooth.addEventListener("change", () => {
      controls.smooth = Number(smooth.value);
      shown.textContent = smooth.value;
      reloadAll(false);
    });
    const log = document.getElementById("chart-log");
    log.addEventListener("change", () => { controls.log = log.checked; reloadAll(false); });
    document.getElementById("chart-reset").addEventListener("click", () => reloadAll(true));
  });

  // A live run's page asks for fresh points (kept at the current zoom).
  document.addEventListener("etude:scalars-changed", () => reloadAll(false));
})();
