// Run page of a draft: its parameters and configuration objects edited in place. Only the
// values changed since the page (or the last save) showed them are sent; the server turns
// each text into the type of the value it replaces and answers every refusal by parameter,
// shown under its input. Enqueueing with unsaved edits asks first.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("run");
  if (!root) return;
  const id = root.dataset.run;

  function showError(field, message) {
    const box = field.parentElement.querySelector(".field-error");
    box.textContent = message || "";
    box.hidden = !message;
    field.classList.toggle("invalid", Boolean(message));
  }

  function setStatus(form, text, failed) {
    const status = form.querySelector(".edit-status");
    status.className = `edit-status ${failed ? "error" : "muted"}`;
    status.textContent = text;
  }

  // What each field showed when the page was drawn (or last saved), as the browser reads it:
  // the markup's value, not the current one, so that typing before this script ran (it is
  // deferred) still counts as an edit.
  for (const field of root.querySelectorAll(".edit-form .param-input, .edit-form textarea")) {
    field.dataset.original = field.defaultValue;
  }
  function changed(field) { return field.value !== field.dataset.original; }

  function markChanged(event) {
    const field = event.target;
    if (field.matches("input, textarea")) field.classList.toggle("changed", changed(field));
  }

  // -- parameters -----------------------------------------------------------------------------
  // Values changed in place are sent in "set", with the new parameter (name and value) if
  // one is typed; checked "remove" boxes in "remove". The table is redrawn (the page is
  // reloaded) when parameters were added or removed.
  const paramsForm = document.getElementById("params-form");
  const inputs = paramsForm ? Array.from(paramsForm.querySelectorAll(".param-input")) : [];
  const removals = paramsForm ? Array.from(paramsForm.querySelectorAll(".param-remove")) : [];
  const newName = paramsForm ? paramsForm.querySelector(".param-new-name") : null;
  const newValue = paramsForm ? paramsForm.querySelector(".param-new-value") : null;
  if (paramsForm) {
    paramsForm.addEventListener("input", markChanged);
    paramsForm.addEventListener("change", (event) => {
      const box = event.target;
      if (!box.matches(".param-remove")) return;
      box.closest("tr").classList.toggle("removed", box.checked);
    });
    paramsForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const edits = {};
      for (const input of inputs) {
        showError(input, "");
        if (changed(input)) edits[input.name] = input.value;
      }
      showError(newName, "");
      showError(newValue, "");
      const added = newName.value.trim();
      if (added) edits[added] = newValue.value;
      else if (newValue.value) {
        showError(newName, "Give the new parameter a name, e.g. General/dropout.");
        setStatus(paramsForm, "not saved", true);
        return;
      }
      const remove = removals.filter((box) => box.checked).map((box) => box.dataset.name);
      if (!Object.keys(edits).length && !remove.length) {
        setStatus(paramsForm, "nothing changed", false);
        return;
      }
      setStatus(paramsForm, "saving…", false);
      try {
        const result = await etude.api(`/api/runs/${id}/parameters`,
          { method: "POST", body: { set: edits, remove } });
        if (added || remove.length) {
          window.location.reload();
          return;
        }
        for (const input of inputs) {
          if (!(input.name in result.texts)) continue;
          input.value = result.texts[input.name];
          input.dataset.original = input.value;
          input.classList.remove("changed");
        }
        setStatus(paramsForm, `saved ${result.changed.length} parameter(s)`, false);
      } catch (error) {
        const problems = (error.data && error.data.problems) || {};
        for (const input of inputs) {
          if (problems[input.name]) showError(input, problems[input.name]);
        }
        if (added && problems[added]) showError(newValue, problems[added]);
        for (const box of removals) {
          const problem = problems[box.dataset.name];
          if (problem) showError(inputs.find((input) => input.name === box.dataset.name), problem);
        }
        setStatus(paramsForm, Object.keys(problems).length ? "not saved: see the values marked"
          : `not saved: ${error.message}`, true);
      }
    });
  }

  // -- configuration objects ------------------------------------------------------------------
  const configurationForms = Array.from(document.querySelectorAll("form.configuration-form"));
  for (const form of configurationForms) {
    const area = form.elements.value;
    form.addEventListener("input", markChanged);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      showError(area, "");
      setStatus(form, "saving…", false);
      try {
        const result = await etude.api(`/api/runs/${id}/configuration`,
          { method: "POST", body: { name: form.dataset.name, value: area.value } });
        area.value = result.text;
        area.dataset.original = area.value;
        area.classList.remove("changed");
        setStatus(form, "saved", false);
      } catch (error) {
        showError(area, error.message);
        setStatus(form, "not saved", true);
      }
    });
  }

  // A new configuration object: a name not taken and a JSON object or list (the server says
  // what is wrong with the text). The page is drawn again with it among the others.
  const newConfiguration = document.getElementById("configuration-new");
  const newConfigurationName = newConfiguration ? newConfiguration.elements.name : null;
  if (newConfiguration) {
    const area = newConfiguration.elements.value;
    newConfiguration.addEventListener("submit", async (event) => {
      event.preventDefault();
      showError(newConfigurationName, "");
      showError(area, "");
      const name = newConfigurationName.value.trim();
      const taken = configurationForms.some((form) => form.dataset.name === name);
      if (!name || taken) {
        showError(newConfigurationName, taken ? `'${name}' exists already: edit it above.`
          : "Give the configuration object a name, e.g. model.");
        setStatus(newConfiguration, "not added", true);
        return;
      }
      setStatus(newConfiguration, "saving…", false);
      try {
        await etude.api(`/api/runs/${id}/configuration`,
          { method: "POST", body: { name, value: area.value } });
        window.location.reload();
      } catch (error) {
        showError(area, error.message);
        setStatus(newConfiguration, "not added", true);
      }
    });
  }

  // -- enqueueing with unsaved edits ------------------------------------------------------------
  const actions = document.getElementById("run-actions");
  if (actions) {
    // Capture: this runs before run.js's handler, which it can stop.
    actions.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action=enqueue]");
      if (!button) return;
      const fields = inputs.concat(configurationForms.map((form) => form.elements.value));
      const unsaved = fields.filter(changed).length + removals.filter((box) => box.checked).length +
        (newName && newName.value.trim() ? 1 : 0) +
        (newConfigurationName && newConfigurationName.value.trim() ? 1 : 0);
      if (unsaved && !window.confirm(`${unsaved} edit(s) are not saved and would not be part ` +
          "of the queued run. Enqueue without them?")) {
        event.stopPropagation();
      }
    }, true);
  }
});
