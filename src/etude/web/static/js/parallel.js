// Compare page: parallel coordinates of the compared runs, one axis per parameter (those
// that differ, or all) and a last axis for the chosen metric (its last value), one line per
// run coloured by that metric. Drawn by Apache ECharts from /api/compare.
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const box = document.getElementById("parallel");
  if (!box) return;
  const note = document.getElementById("parallel-status");
  const metricSelect = document.getElementById("parallel-metric");
  const every = document.getElementById("parallel-all");
  let data;
  try {
    data = await etude.api(`/api/compare?ids=${encodeURIComponent(box.dataset.ids)}`);
  } catch (error) {
    note.textContent = `could not read the runs: ${error.message}`;
    return;
  }
  const chart = echarts.init(box, null, { renderer: "canvas" });
  window.addEventListener("resize", () => chart.resize());

  // An axis of numbers when every value is a number (or missing), else of categories.
  function axis(index, name, values) {
    const numeric = values.every((v) => v === null || typeof v === "number");
    if (numeric) return { axis: { dim: index, name, type: "value", scale: true }, values };
    const text = values.map((v) => (v === null ? "—" : etude.fmt(v)));
    return { axis: { dim: index, name, type: "category", data: [...new Set(text)] }, values: text };
  }

  function draw() {
    const params = data.params.filter((p) => every.checked || p.differs);
    const metric = data.metrics[Number(metricSelect.value)];
    const columns = params.map((p, i) => axis(i, p.key, p.values));
    if (metric) {
      const name = metric.series === metric.title ? metric.title : `${metric.title}/${metric.series}`;
      columns.push(axis(columns.length, name, metric.values));
    }
    if (!columns.length) {
      note.textContent = "No parameter differs and no metric was reported.";
      return;
    }
    const lines = data.runs.map((run, r) => ({
      name: `${run.name} ${run.id.slice(0, 8)}`,
      value: columns.map((c) => c.values[r]),
    }));
    const last = columns.length - 1;
    const scores = metric ? metric.values.filter((v) => typeof v === "number") : [];
    chart.setOption({
      animation: false,
      parallelAxis: columns.map((c) => c.axis),
      parallel: { left: 60, right: 110, top: 50, bottom: 30,
                  parallelAxisDefault: { nameLocation: "end", nameGap: 18, nameTextStyle: { fontSize: 11 } } },
      visualMap: scores.length ? {
        type: "continuous", dimension: last, min: Math.min(...scores), max: Math.max(...scores),
        right: 10, top: "middle", calculable: true, precision: 4, text: ["high", "low"],
        inRange: { color: ["#2357c6", "#e0a030", "#b3261e"] },
      } : undefined,
      tooltip: { trigger: "item", formatter: (item) => item.name },
      series: [{ type: "parallel", lineStyle: { width: 2, opacity: 0.8 }, data: lines }],
    }, true);
    note.textContent = `${lines.length} runs · ${columns.length} axes`;
    box.dataset.axes = String(columns.length);
    box.dataset.state = "drawn";
  }
  metricSelect.addEventListener("change", draw);
  every.addEventListener("change", draw);
  draw();
});
