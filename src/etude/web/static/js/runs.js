// Runs table: Tabulator with remote paging and sorting over /api/runs, the filter grammar
// in the search box (errors shown under it with a caret at the column), chosen columns,
// the project tree, and bulk actions (compare, tag, archive, enqueue, abort). The state of the page (filter,
// project, sort, columns) is kept in the URL, so a view can be bookmarked or shared.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const where = document.getElementById("where");
  const errorBox = document.getElementById("where-error");
  const columnsInput = document.getElementById("columns");
  const archived = document.getElementById("archived");
  const count = document.getElementById("run-count");
  const url = new URL(window.location.href);
  const state = {
    where: url.searchParams.get("where") || "",
    project: url.searchParams.get("project") || "",
    columns: url.searchParams.get("columns") || "",
    sort: url.searchParams.get("sort") || "",
  };
  where.value = state.where;
  columnsInput.value = state.columns;
  let known = { fields: [], params: [], metrics: [], user: [], tags: [] };
  let table = null;

  function fieldNames() {
    const p = etude.part;
    return known.fields.concat(
      known.params.map((k) => `params.${p(k)}`),
      known.metrics.map(([t, s]) => (t === s ? `metrics.${p(t)}` : `metrics.${p(t)}.${p(s)}`)),
      known.user.map((k) => `user.${p(k)}`),
      ["tags has ", "and ", "or ", "not ", "in ("]);
  }
  // The names for completion are asked for once the first page is shown: on a big index
  // their query is slower than the page's and would compete with it for the server's CPU.
  let fieldsAsked = false;
  function askFields() {
    if (fieldsAsked) return;
    fieldsAsked = true;
    etude.api("/api/runs/fields").then((data) => { known = data; }).catch(() => {});
  }
  etude.completer(where, fieldNames);
  etude.completer(columnsInput, fieldNames);

  function chosenColumns() {
    return columnsInput.value.split(",").map((c) => c.trim()).filter((c) => c);
  }

  function remember() {
    const next = new URL(window.location.href);
    for (const key of ["where", "project", "columns", "sort"]) {
      if (state[key]) next.searchParams.set(key, state[key]); else next.searchParams.delete(key);
    }
    window.history.replaceState(null, "", next);
  }

  function showError(error) {
    const data = error.data || {};
    errorBox.replaceChildren();
    if (data.column) {
      errorBox.appendChild(etude.el("pre", { class: "caret" }, `${state.where}\n${" ".repeat(data.column - 1)}^`));
    }
    errorBox.appendChild(etude.el("div", {}, error.message));
    errorBox.hidden = false;
  }

  function link(cell) {
    const row = cell.getRow().getData();
    return etude.el("a", { href: `/runs/${encodeURIComponent(row.id)}` }, cell.getValue() || row.id.slice(0, 12));
  }
  function stateBadge(cell) {
    const row = cell.getRow().getData();
    return etude.el("span", { class: `state state-${cell.getValue()}` }, cell.getValue() + (row.reason ? ` (${row.reason})` : ""));
  }
  function tagList(cell) {
    return etude.el("span", {}, ...(cell.getValue() || []).map((t) => etude.el("span", { class: "tag" }, t)));
  }
  function text(format) { return (cell) => document.createTextNode(format(cell.getValue())); }

  function columns() {
    const base = [
      { formatter: "rowSelection", titleFormatter: "rowSelection", headerSort: false, width: 40, hozAlign: "center" },
      { title: "Name", field: "name", formatter: link, minWidth: 160 },
      { title: "Project", field: "project" },
      { title: "State", field: "state", formatter: stateBadge },
      { title: "Type", field: "type" },
      { title: "Tags", field: "tags", formatter: tagList, headerSort: false },
      { title: "Created", field: "created", formatter: text(etude.when) },
      { title: "Duration", field: "duration", formatter: text(etude.duration) },
    ];
    return base.concat(chosenColumns().map((c) => ({ title: c, field: c, formatter: text(etude.fmt), hozAlign: "right" })));
  }

  async function request(_url, _config, params) {
    const query = new URLSearchParams({ limit: String(params.size || 50), offset: String(((params.page || 1) - 1) * (params.size || 50)) });
    if (state.where) query.set("where", state.where);
    if (state.project) query.set("project", state.project);
    if (archived.checked) query.set("archived", "true");
    const chosen = chosenColumns();
    if (chosen.length) query.set("columns", chosen.join(","));
    const sorter = (params.sort || [])[0];
    state.sort = sorter ? (sorter.dir === "desc" ? "-" : "") + sorter.field : "";
    if (state.sort) query.set("sort", state.sort);
    remember();
    try {
      const data = await etude.api(`/api/runs?${query}`);
      errorBox.hidden = true;
      count.textContent = `${data.total} run(s) · ${data.took_ms} ms`;
      count.dataset.total = String(data.total);
      const rows = data.rows.map((row) => Object.assign(row, row.values));
      return { last_page: Math.max(1, Math.ceil(data.total / (params.size || 50))), data: rows };
    } catch (error) {
      showError(error);
      count.textContent = "";
      return { last_page: 1, data: [] };
    }
  }

  function build() {
    if (table) table.destroy();
    const initialSort = state.sort ? [{ column: state.sort.replace(/^-/, ""), dir: state.sort.startsWith("-") ? "desc" : "asc" }] : [];
    table = new Tabulator("#runs-table", {
      ajaxURL: "/api/runs", ajaxRequestFunc: request, pagination: true, paginationMode: "remote",
      paginationSize: 50, paginationSizeSelector: [25, 50, 100, 250], sortMode: "remote",
      nestedFieldSeparator: false, layout: "fitDataFill", selectableRows: true, index: "id",
      columns: columns(), initialSort, placeholder: "No runs match", maxHeight: "75vh",
      renderVertical: "basic",
    });
    table.on("rowSelectionChanged", (data) => {
      document.getElementById("compare-selected").disabled = data.length < 2 || data.length > 20;
      document.getElementById("tag-selected").disabled = data.length === 0;
      document.getElementById("archive-selected").disabled = data.length === 0;
      document.getElementById("enqueue-selected").disabled = data.length === 0;
      document.getElementById("abort-selected").disabled = data.length === 0;
    });
    table.on("dataProcessed", () => {
      document.getElementById("runs-table").dataset.loaded = String(Date.now());
      askFields();
    });
  }
  build();

  function reload() { table.setData(); }

  document.getElementById("run-search").addEventListener("submit", (event) => {
    event.preventDefault();
    state.where = where.value.trim();
    reload();
  });
  columnsInput.addEventListener("change", () => { state.columns = chosenColumns().join(","); build(); });
  archived.addEventListener("change", reload);
  for (const item of document.querySelectorAll("a.project")) {
    if (item.dataset.project === state.project) {
      document.querySelectorAll("a.project").forEach((a) => a.classList.remove("here"));
      item.classList.add("here");
    }
    item.addEventListener("click", (event) => {
      event.preventDefault();
      document.querySelectorAll("a.project").forEach((a) => a.classList.remove("here"));
      item.classList.add("here");
      state.project = item.dataset.project;
      reload();
    });
  }

  function selectedIds() { return table.getSelectedData().map((row) => row.id); }
  document.getElementById("compare-selected").addEventListener("click", () => {
    window.location.href = `/compare?ids=${encodeURIComponent(selectedIds().join(","))}`;
  });
  document.getElementById("tag-selected").addEventListener("click", async () => {
    const tag = window.prompt("Tag to add to the selected runs (prefix with - to remove it):");
    if (!tag) return;
    const body = tag.startsWith("-") ? { ids: selectedIds(), remove: [tag.slice(1)] } : { ids: selectedIds(), add: [tag] };
    try { await etude.api("/api/runs/bulk", { method: "POST", body }); reload(); }
    catch (error) { window.alert(`Could not tag: ${error.message}`); }
  });
  document.getElementById("archive-selected").addEventListener("click", async () => {
    const ids = selectedIds();
    if (!window.confirm(`Archive ${ids.length} run(s)? They are hidden unless "archived" is ticked.`)) return;
    try { await etude.api("/api/runs/bulk", { method: "POST", body: { ids, archive: !archived.checked } }); reload(); }
    catch (error) { window.alert(`Could not archive: ${error.message}`); }
  });
  // Enqueue and abort go through the runs' state table: a run whose state refuses is
  // reported under the toolbar with the reason; the others are changed.
  const bulkStatus = document.getElementById("bulk-status");
  async function bulkAction(body) {
    bulkStatus.className = "muted";
    bulkStatus.textContent = `${body.action}…`;
    try {
      const result = await etude.api("/api/runs/bulk", { method: "POST", body });
      bulkStatus.textContent = `${body.action}: ${result.changed.length} run(s) changed`;
    } catch (error) {
      const changed = (error.data && error.data.changed) || [];
      bulkStatus.className = "error";
      bulkStatus.textContent = `${body.action}: ${changed.length} run(s) changed; ${error.message}`;
    }
    reload();
  }
  document.getElementById("enqueue-selected").addEventListener("click", () => {
    const ids = selectedIds();
    const queue = window.prompt(`Enqueue ${ids.length} run(s) on which queue?`, "default");
    if (queue) bulkAction({ ids, action: "enqueue", queue: queue.trim() });
  });
  document.getElementById("abort-selected").addEventListener("click", () => {
    const ids = selectedIds();
    if (window.confirm(`Abort ${ids.length} run(s)? Their processes get SIGTERM.`)) bulkAction({ ids, action: "abort" });
  });
});
