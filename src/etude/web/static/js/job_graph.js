// Experiments page: the dependency graph of the selected experiment's jobs, drawn by
// Cytoscape.js (its breadth-first layout, roots at the top) from /api/jobs/graph. Nodes are
// coloured by state and follow the live states; a click opens the job.
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const box = document.getElementById("job-graph");
  if (!box) return;
  const note = document.getElementById("job-graph-status");
  const COLOURS = {
    done: "#7cc48f", error: "#e4786f", running: "#6aa8e8", waiting: "#b3a6ec",
    unscheduled: "#c5cad3",
  };
  let data;
  try {
    data = await etude.api(box.dataset.url);
  } catch (error) {
    note.textContent = `could not read the graph: ${error.message}`;
    return;
  }
  if (!data.nodes.length) {
    box.hidden = true;
    note.textContent = "No jobs.";
    return;
  }
  const elements = data.nodes.map((node) => ({
    group: "nodes",
    data: {
      id: node.folder, state: node.state, outside: node.outside ? "yes" : "no",
      label: `${node.task.split(".").pop()} ${node.id.slice(0, 8)}`,
    },
  })).concat(data.edges.map((edge, index) => ({
    group: "edges", data: { id: `e${index}`, source: edge.source, target: edge.target },
  })));
  const graph = cytoscape({
    container: box,
    elements,
    layout: { name: "breadthfirst", directed: true, spacingFactor: 1.1, padding: 20 },
    wheelSensitivity: 0.3,
    style: [
      { selector: "node", style: {
        "background-color": "#c5cad3",
        label: "data(label)", "font-size": 11, "text-valign": "bottom", "text-margin-y": 4,
        width: 26, height: 26, "border-width": 1, "border-color": "#1d2330",
      } },
      ...Object.entries(COLOURS).map(([state, colour]) => ({
        selector: `node[state = "${state}"]`, style: { "background-color": colour },
      })),
      { selector: "node[outside = 'yes']", style: { "border-style": "dashed", "border-width": 2 } },
      { selector: "edge", style: {
        width: 1.5, "line-color": "#8a93a3", "target-arrow-color": "#8a93a3",
        "target-arrow-shape": "triangle", "curve-style": "bezier",
      } },
    ],
  });
  graph.on("tap", "node", (event) => {
    window.location.href = `/job?folder=${encodeURIComponent(event.target.id())}`;
  });
  document.addEventListener("etude:job-states", (event) => {
    for (const [folder, [state]] of Object.entries(event.detail)) {
      const node = graph.getElementById(folder);
      if (node.nonempty()) node.data("state", state);
    }
  });
  note.textContent = `${data.nodes.length} job(s), ${data.edges.length} dependency(ies)` +
    (data.truncated ? " (the first jobs only)" : "");
  box.dataset.nodes = String(data.nodes.length);
  box.dataset.edges = String(data.edges.length);
  graph.ready(() => { box.dataset.state = "drawn"; });
});
