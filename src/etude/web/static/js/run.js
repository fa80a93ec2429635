// Run page: the console (its tail, then live while the run runs, through server-sent
// events), the state badge kept current, console search, and editing tags and user
// properties.
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
});
