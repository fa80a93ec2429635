// Experiments page: the jobs' states change live (server-sent events from
// /api/jobs/stream), running jobs can be killed and failed task jobs retried (after a
// confirmation). Each change is passed on as an `etude:job-states` event (the graph listens).
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
      const retry = row.querySelector("button.retry");
      if (retry) retry.hidden = state !== "error";
    }
    document.dispatchEvent(new CustomEvent("etude:job-states", { detail: jobs }));
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
    const retry = event.target.closest("button.retry");
    if (retry) { retryJob(retry); return; }
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

  async function retryJob(button) {
    const folder = button.dataset.folder;
    if (!window.confirm(`Retry the failed job in ${folder}? Its configuration is submitted again in its experiment.`)) return;
    button.disabled = true;
    try {
      const result = await etude.api("/api/job/retry", { method: "POST", body: { folder } });
      status.textContent = result.message;
    } catch (error) {
      status.textContent = `retry refused: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  }
});
