// Experiments page: the jobs' states change live (server-sent events from
// /api/jobs/stream), and running jobs can be killed (after a confirmation).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("live-status");
  if (!status) return;
  const table = document.getElementById("jobs");

  function rowOf(folder) {
    for (const row of table.tBodies[0].rows) if (row.dataset.folder === folder) return row;
    return null;
  }

  function apply(jobs) {
    let unknown = 0;
    for (const [folder, [state, reason]] of Object.entries(jobs)) {
      const row = rowOf(folder);
      if (!row) { unknown += 1; continue; }
      const badge = row.querySelector(".job-state span");
      badge.textContent = state;
      badge.className = `state state-${state}`;
      row.querySelector(".job-reason").textContent = reason || "";
      row.querySelector("button.kill").hidden = state !== "running";
    }
    return unknown;
  }

  const source = new EventSource(status.dataset.stream);
  let fresh = 0;
  function seen(event) {
    const data = JSON.parse(event.data);
    fresh += apply(data.jobs);
    status.textContent = `live, updated ${new Date().toLocaleTimeString()}` +
      (fresh ? ` · ${fresh} new job(s): reload to see them` : "");
    status.dataset.updates = String(Number(status.dataset.updates || 0) + 1);
  }
  source.addEventListener("states", seen);
  source.addEventListener("changes", seen);
  source.onerror = () => { status.textContent = "disconnected; retrying…"; };

  table.addEventListener("click", async (event) => {
    const button = event.target.closest("button.kill");
    if (!button) return;
    const folder = button.dataset.folder;
    if (!window.confirm(`Kill the job in ${folder}? Its process gets SIGTERM.`)) return;
    button.disabled = true;
    try {
      const result = await etude.api("/api/job/kill", { method: "POST", body: { folder } });
      status.textContent = result.message || `now ${result.state}`;
    } catch (error) {
      status.textContent = `kill failed: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
});
