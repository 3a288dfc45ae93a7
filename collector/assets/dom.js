// Small DOM helpers: elements are built with textContent, never innerHTML, so text from the
// API (sensor names, notes) can never become markup.

const SVG = "http://www.w3.org/2000/svg";

// h("a", {href: "#/"}, "text", child, ...): an HTML element. Attributes whose value is
// null, undefined or false are left out; children may be strings, nodes, arrays or null.
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

// Like h, for SVG elements.
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG, tag), attrs, children);
}

function fill(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// A timestamp (milliseconds since the epoch, as the API sends them) as local date and time.
export function when(ms) {
  if (typeof ms !== "number") return "—";
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// "3 min ago" style age of a timestamp relative to now (ms).
export function ago(ms, now = Date.now()) {
  if (typeof ms !== "number") return "—";
  const secs = Math.max(0, Math.round((now - ms) / 1000));
  if (secs < 90) return `${secs} s ago`;
  if (secs < 5400) return `${Math.round(secs / 60)} min ago`;
  if (secs < 129600) return `${Math.round(secs / 3600)} h ago`;
  return `${Math.round(secs / 86400)} d ago`;
}

// A temperature in °C with one decimal, or a dash.
export function celsius(value) {
  return typeof value === "number" && Number.isFinite(value) ? `${value.toFixed(1)} °C` : "—";
}

// The first argument that is a finite number, or null.
export function firstNumber(...values) {
  for (const v of values) if (typeof v === "number" && Number.isFinite(v)) return v;
  return null;
}

// A table: headers, then rows of cells (strings or nodes); an empty list shows `empty`.
export function table(headers, rows, empty = "Nothing to show.") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "scroll" },
    h("table", {},
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c)))))));
}

// A hash link to a page of the dashboard, its path segments encoded.
export function link(text, ...segments) {
  return h("a", { href: "#/" + segments.map(encodeURIComponent).join("/") }, text);
}
