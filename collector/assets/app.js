// The dashboard's entry point: hash routes to views, the sign-in form when the API asks for
// a token, and a refresh every 30 seconds.

import { NeedsToken, setToken, token } from "./api.js";
import { h, when } from "./dom.js";
import * as views from "./views.js";

const REFRESH_MS = 30000;

// Route table: first path segment → [view, nav item].
const ROUTES = {
  "": [views.overview, "overview"],
  zone: [views.zone, "overview"],
  rack: [views.rack, "overview"],
  incidents: [views.incidents, "incidents"],
  incident: [views.incident, "incidents"],
  problems: [views.problems, "problems"],
  problem: [views.problem, "problems"],
  silences: [views.silences, "silences"],
};

const main = document.getElementById("view");
const logout = document.getElementById("logout");
let timer = null;
let rendering = 0;

function route() {
  const path = location.hash.replace(/^#\/?/, "");
  const [head, ...rest] = path.split("/").map(decodeURIComponent);
  return { found: ROUTES[head], args: rest };
}

async function render() {
  clearTimeout(timer);
  const turn = ++rendering;
  const { found, args } = route();
  logout.hidden = !token();
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", !!found && a.dataset.nav === found[1]);
  }
  if (!found) {
    main.replaceChildren(h("p", {}, "No such page. ", h("a", { href: "#/" }, "Back to the site overview.")));
    return;
  }
  try {
    const node = await found[0](...args);
    if (turn !== rendering) return; // a newer render started meanwhile
    main.replaceChildren(node);
    main.dataset.ready = location.hash || "#/";
    document.getElementById("updated").textContent = `updated ${when(Date.now())}`;
    timer = setTimeout(render, REFRESH_MS);
  } catch (error) {
    if (turn !== rendering) return;
    if (error instanceof NeedsToken) {
      main.replaceChildren(signIn(error));
    } else {
      main.replaceChildren(h("p", { class: "error", role: "alert" }, String(error.message || error)));
      timer = setTimeout(render, REFRESH_MS);
    }
  }
}

// The sign-in form: the token stays in this tab's sessionStorage only.
function signIn(error) {
  const input = h("input", {
    type: "password", id: "token", name: "token", autocomplete: "current-password",
    required: true, placeholder: "API token",
  });
  const form = h("form", { class: "card signin", id: "signin" },
    h("h1", {}, "Sign in"),
    h("p", {}, error.status === 403
      ? "This token may not read the API (it needs the read scope)."
      : "This collector needs an API token (coldaisle-collector token new NAME --scopes read)."),
    token() ? h("p", { class: "error" }, error.message) : null,
    h("label", { for: "token" }, "Token"), input,
    h("button", { type: "submit" }, "Sign in"),
    h("p", { class: "muted" }, "The token is kept in this browser tab only and sent as a bearer header."));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    render();
  });
  delete main.dataset.ready;
  setTimeout(() => input.focus(), 0);
  return form;
}

logout.addEventListener("click", () => {
  setToken(null);
  render();
});
window.addEventListener("hashchange", render);
render();
