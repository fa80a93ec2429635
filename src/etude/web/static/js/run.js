// Run page: the console (its tail, then live while the run runs, through server-sent
// events), the state badge kept current, console search, editing tags and user
// properties, and the actions the run's state allows (after a confirmation).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("run");
  if (!root) return;
  const id = root.dataset.run;
  const pre = document.getElementById("console");
  const status = document.getElementById("console-status");
  const search = document.getElementById("console-search");
  const partSelect = document.getElementById("console-part");
  const MAX_TEXT = 2 * 1024 * 1024;
  let text = "";
  let stream = null;
  let lastCharts = 0;

  function show() {
    const query = search.value;
    if (!query) {
      pre.textContent = text;
      pre.scrollTop = pre.scrollHeight;
      return;
    }
    const lines = text.split("\n").filter((line) => line.includes(query));
    pre.textContent = lines.join("\n");
    status.textContent = `${lines.length} matching line(s)`;
  }

  function setState(state, reason) {
    root.dataset.state = state;
    const badge = document.getElementById("run-state");
    badge.textContent = state;
    badge.className = `state state-${state}`;
    document.getElementById("overview-state").textContent = state + (reason ? ` (${reason})` : "");
  }

  function part() { return partSelect ? Number(partSelect.value) : 0; }

  async function start() {
    if (stream) stream.close();
    text = "";
    const live = ["running", "queued"].includes(root.dataset.state);
    if (!live) {
      try {
        const data = await etude.api(`/api/runs/${id}/console?part=${part()}`);
        text = (data.offset > 0 ? "…\n" : "") + data.text;
        status.textContent = `${data.size} bytes`;
      } catch (error) {
        status.textContent = `could not read the console: ${error.message}`;
      }
      show();
      return;
    }
    stream = new EventSource(`/api/runs/${id}/stream?part=${part()}`);
    stream.addEventListener("update", (event) => {
      const data = JSON.parse(event.data);
      if (data.text) {
        text += data.text;
        if (text.length > MAX_TEXT) text = text.slice(text.length - MAX_TEXT);
        show();
      }
      if (data.state !== root.dataset.state) setState(data.state, data.reason);
      status.textContent = `live · ${data.size} bytes`;
      const now = Date.now();
      if (now - lastCharts > 5000) {
        lastCharts = now;
        document.dispatchEvent(new CustomEvent("etude:scalars-changed"));
      }
    });
    stream.addEventListener("end", () => {
      stream.close();
      status.textContent = `ended · ${root.dataset.state}`;
      document.dispatchEvent(new CustomEvent("etude:scalars-changed"));
    });
  }

  search.addEventListener("input", show);
  if (partSelect) {
    partSelect.addEventListener("change", () => {
      document.getElementById("console-download").href = `/api/runs/${id}/console/download?part=${part()}`;
      start();
    });
  }
  start();

  // -- tags and user properties -------------------------------------------------------------
  const tags = document.getElementById("tags");
  function drawTags(list) {
    tags.replaceChildren(...list.map((tag) => etude.el("span", { class: "tag", dataset: { tag } }, tag,
      etude.el("button", { class: "untag", dataset: { tag }, title: "remove" }, "×"))));
  }
  async function editTags(body) {
    try {
      const result = await etude.api(`/api/runs/${id}/tags`, { method: "POST", body });
      drawTags(result.changed[0].tags);
    } catch (error) {
      window.alert(`Could not change the tags: ${error.message}`);
    }
  }
  tags.addEventListener("click", (event) => {
    const button = event.target.closest("button.untag");
    if (button) editTags({ remove: [button.dataset.tag] });
  });
  const tagForm = document.getElementById("tag-form");
  if (tagForm) {
    tagForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const tag = tagForm.elements.tag.value.trim();
      if (tag) editTags({ add: [tag] });
      tagForm.reset();
    });
  }
  const propertyForm = document.getElementById("property-form");
  if (propertyForm) {
    propertyForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const key = propertyForm.elements.key.value.trim();
      let value = propertyForm.elements.value.value;
      if (!key) return;
      try { value = JSON.parse(value); } catch (ignored) { /* kept as text */ }
      if (value !== null && typeof value === "object") value = JSON.stringify(value);
      try {
        const result = await etude.api(`/api/runs/${id}/properties`,
          { method: "POST", body: { properties: { [key]: value } } });
        const table = document.getElementById("properties");
        table.replaceChildren(...Object.entries(result.user_properties).map(([k, v]) =>
          etude.el("tr", {}, etude.el("th", {}, k), etude.el("td", {}, etude.fmt(v)))));
        propertyForm.reset();
      } catch (error) {
        window.alert(`Could not set the property: ${error.message}`);
      }
    });
  }
  // -- actions: clone, enqueue, dequeue, abort, reset, publish ------------------------------
  const QUESTIONS = {
    clone: "Clone this run into a new draft (its inputs, none of its outputs)?",
    dequeue: "Take this run off its queue (back to draft)?",
    abort: "Abort this run? Its process gets SIGTERM.",
    reset: "Reset this run to a draft? Its outputs (scalars, console, plots, artifacts, output models) are deleted.",
    publish: "Publish this run? It becomes read-only for good.",
  };
  const actions = document.getElementById("run-actions");
  if (actions) {
    const actionStatus = document.getElementById("action-status");
    actions.addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button) return;
      const action = button.dataset.action;
      const body = { action };
      if (action === "enqueue") {
        const queue = window.prompt("Enqueue this run on which queue?", "default");
        if (!queue) return;
        body.queue = queue.trim();
      } else if (!window.confirm(QUESTIONS[action])) {
        return;
      }
      button.disabled = true;
      actionStatus.className = "muted";
      actionStatus.textContent = `${action}…`;
      try {
        const result = await etude.api(`/api/runs/${id}/action`, { method: "POST", body });
        if (result.clone) window.location.href = `/runs/${encodeURIComponent(result.clone)}`;
        else window.location.reload();
      } catch (error) {
        actionStatus.className = "error";
        actionStatus.textContent = error.message;
        button.disabled = false;
      }
    });
  }
});
