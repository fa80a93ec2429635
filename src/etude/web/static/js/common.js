// Shared helpers of the etude pages: JSON calls to /api/, DOM building with text only (never
// HTML from data), value formatting, and a completer for field names.
"use strict";

window.etude = (function () {
  async function api(url, options) {
    options = Object.assign({}, options || {});
    const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    if (options.body !== undefined && typeof options.body !== "string") {
      options.body = JSON.stringify(options.body);
      headers["Content-Type"] = "application/json";
    }
    if (options.method && options.method !== "GET") headers["X-Etude"] = "1";
    options.headers = headers;
    options.credentials = "same-origin";
    const response = await fetch(url, options);
    let data = null;
    try { data = await response.json(); } catch (ignored) { data = null; }
    if (!response.ok) {
      const error = new Error((data && data.error) || response.statusText);
      error.data = data;
      error.status = response.status;
      throw error;
    }
    return data;
  }

  // el("a", {href: "/x", class: "y"}, "text", child...): text children become text nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function when(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const d = new Date(seconds * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    seconds = Math.round(seconds);
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return h ? `${h}h${pad(m)}m${pad(s)}s` : `${m}m${pad(s)}s`;
  }

  function fmt(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "number") {
      if (Number.isInteger(value)) return String(value);
      return Math.abs(value) >= 1e-3 && Math.abs(value) < 1e6 ? String(+value.toPrecision(6)) : value.toExponential(4);
    }
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  // Suggest names for the word under the caret of `input` (fields of the filter grammar,
  // columns); Tab or a click takes the first or the chosen one.
  function completer(input, names) {
    const box = el("ul", { class: "suggest", hidden: true });
    input.insertAdjacentElement("afterend", box);
    let matches = [];
    function word() {
      const upto = input.value.slice(0, input.selectionStart);
      const match = /[A-Za-z0-9_.`:\/-]*$/.exec(upto);
      return { start: upto.length - match[0].length, text: match[0] };
    }
    function accept(name) {
      const { start } = word();
      const end = input.selectionStart;
      input.value = input.value.slice(0, start) + name + input.value.slice(end);
      input.selectionStart = input.selectionEnd = start + name.length;
      box.hidden = true;
      input.focus();
    }
    input.addEventListener("input", () => {
      const { text } = word();
      const all = names();
      matches = text.length < 1 ? [] : all.filter((n) => n.startsWith(text) && n !== text).slice(0, 12);
      box.replaceChildren(...matches.map((n) => {
        const item = el("li", {}, n);
        item.addEventListener("mousedown", (event) => { event.preventDefault(); accept(n); });
        return item;
      }));
      box.hidden = matches.length === 0;
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Tab" && !box.hidden && matches.length) {
        event.preventDefault();
        accept(matches[0]);
      } else if (event.key === "Escape") {
        box.hidden = true;
      }
    });
    input.addEventListener("blur", () => { box.hidden = true; });
  }

  // A filter grammar field part holding dots, slashes, spaces or colons is quoted with backticks.
  function part(text) { return /^[A-Za-z0-9_-]+$/.test(text) ? text : "`" + text + "`"; }

  // Compare pages: "only the differences" hides the parameters that are equal everywhere.
  document.addEventListener("DOMContentLoaded", () => {
    const toggle = document.getElementById("only-differences");
    if (toggle) {
      toggle.addEventListener("change", () => {
        document.getElementById("compare-params").classList.toggle("only-differences", toggle.checked);
      });
    }
  });

  return { api, el, when, duration, fmt, completer, part };
})();
