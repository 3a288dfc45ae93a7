// The dashboard's pages. Each view takes its route's parameters and resolves to a node;
// every figure comes from the JSON API. Fields the API may add later (the richer zone
// report) are read when present and skipped when absent.

import { get, rfc3339 } from "./api.js";
import { h, when, ago, celsius, firstNumber, table, link } from "./dom.js";
import { BANDS, bandsOf, classify, describe } from "./bands.js";
import { temperatureChart } from "./chart.js";

const HOUR = 3600e3;

function badge(text, kind) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

// A rack's current inlet temperature: the report's last reading (or a richer field).
function inletNow(rack) {
  return firstNumber(rack.inlet_last, rack.inlet && rack.inlet.current, rack.inlet_current);
}

// The heat map of one zone report: one tile per rack, grouped by row when rows are known.
function heatMap(report, site, zone) {
  const bands = bandsOf(report);
  const racks = report.racks || [];
  if (!racks.length) return h("p", { class: "muted" }, "No racks reported yet.");
  const rows = new Map();
  for (const rack of racks) {
    const row = rack.row || "";
    if (!rows.has(row)) rows.set(row, []);
    rows.get(row).push(rack);
  }
  return h("div", { class: "heatmap", "data-zone": zone },
    [...rows].map(([row, list]) => h("div", { class: "heatrow" },
      row ? h("span", { class: "rowname" }, `Row ${row}`) : null,
      list.map((rack) => {
        const t = inletNow(rack);
        const band = classify(t, bands);
        return h("a", {
          class: `rack band-${band}`, href: "#/" + ["rack", site, zone, rack.rack].map(encodeURIComponent).join("/"),
          "data-rack": rack.rack, "data-band": band, "data-inlet": t,
          title: `${rack.rack}: ${celsius(t)} (${describe(band)})`,
        }, h("span", { class: "rackname" }, rack.rack), h("span", { class: "temp" }, celsius(t)),
        rack.open_incidents ? h("span", { class: "alarm", title: "open incidents" }, `⚠ ${rack.open_incidents}`) : null);
      }))));
}

function legend(bands) {
  return h("div", { class: "legend" },
    h("span", { class: "muted" }, `ASHRAE ${bands.name}: recommended ${bands.recommended[0]}–${bands.recommended[1]} °C, ` +
      `allowable ${bands.allowable[0]}–${bands.allowable[1]} °C`),
    BANDS.map(([name, words]) => h("span", { class: "key" }, h("i", { class: `swatch band-${name}` }), words)));
}

// Where an incident or problem is: "site / zone" (full records carry a fingerprint; a zone
// report's summaries do not, their zone is the page's).
function where(x) {
  return x.fingerprint ? `${x.fingerprint.site} / ${x.fingerprint.zone}` : "this zone";
}

function category(x) {
  return (x.fingerprint && x.fingerprint.category) || x.category || "";
}

function incidentRows(list) {
  return list.map((i) => [
    link(i.id, "incident", i.id),
    where(i),
    category(i),
    badge(i.severity, i.severity),
    badge(i.status, i.status),
    when(i.opened_at),
    (i.active_sources || []).join(", ") || "—",
  ]);
}

function problemRows(list) {
  return list.map((p) => [
    link(p.id, "problem", p.id),
    where(p),
    category(p),
    badge(p.status, p.status),
    when(p.opened_at),
    p.reason || "",
  ]);
}

// Site overview: every zone with its mini heat map and counts, the agents, the totals.
export async function overview() {
  const [zones, stats, agents] = await Promise.all([get("zones"), get("stats"), get("agents")]);
  const reports = await Promise.all(zones.map((z) =>
    get(`zones/${encodeURIComponent(z.zone)}/report`, { site: z.site }).catch(() => null)));
  const now = Date.now();
  const agentRows = Object.entries(agents).map(([id, a]) => [
    id, a.site || "", a.silent ? badge("silent", "critical") : badge("live", "resolved"),
    ago(firstNumber(a.last_activity, a.last_seen), now), String(a.records ?? "—"),
    String(a.dropped_by_agent ?? 0),
  ]);
  return h("section", {},
    h("h1", {}, "Site overview"),
    h("div", { class: "totals" },
      h("div", { class: "total", id: "total-incidents" }, h("b", {}, String(stats.open_incidents)), "open incidents"),
      h("div", { class: "total" }, h("b", {}, String(stats.open_problems)), "open problems"),
      h("div", { class: "total" }, h("b", {}, String(stats.agents)), "agents"),
      h("div", { class: "total" }, h("b", {}, stats.latest_event ? ago(stats.latest_event, now) : "—"), "latest event")),
    zones.length ? null : h("p", { class: "muted" }, "No zone has reported yet."),
    h("div", { class: "zones" }, zones.map((z, n) => h("article", { class: "zone card" },
      h("h2", {}, link(`${z.site} / ${z.zone}`, "zone", z.site, z.zone)),
      h("p", { class: "muted" }, `${z.racks} racks · ${z.open_incidents} open incidents · ${z.open_problems} open problems`),
      reports[n] ? heatMap(reports[n], z.site, z.zone) : h("p", { class: "muted" }, "Report unavailable.")))),
    h("h2", {}, "Agents"),
    table(["agent", "site", "state", "last heard", "records", "dropped"], agentRows, "No agent has connected yet."));
}

// One zone: heat map with legend, rack table, open incidents and problems.
export async function zone(site, zoneName) {
  const report = await get(`zones/${encodeURIComponent(zoneName)}/report`, { site });
  const bands = bandsOf(report);
  const racks = report.racks || [];
  return h("section", {},
    h("p", { class: "crumbs" }, link("Site", ""), " › ", `${report.site} / ${report.zone}`),
    h("h1", {}, `Zone ${report.zone}`),
    h("h2", {}, "Heat map (inlet, last reading)"),
    heatMap(report, report.site, report.zone),
    legend(bands),
    h("h2", {}, "Racks"),
    table(["rack", "sensors", "last", "average", "max", "open incidents"], racks.map((r) => [
      link(r.rack, "rack", report.site, report.zone, r.rack), String(r.sensors ?? "—"),
      celsius(inletNow(r)), celsius(r.inlet_avg), celsius(r.inlet_max), String(r.open_incidents ?? 0),
    ])),
    h("h2", {}, "Open incidents"),
    table(["id", "zone", "category", "severity", "status", "opened", "sources"], incidentRows(report.open_incidents || []), "No open incident."),
    h("h2", {}, "Problems"),
    table(["id", "zone", "category", "status", "opened", "reason"], problemRows(report.problems || []), "No problem."));
}

// Hourly figures of one rack's inlet sensors over the last 24 hours, one history request per
// hour (the history route merges a period into one figure per sensor).
async function hourly(site, zoneName, rack, now) {
  const end = Math.floor(now / HOUR) * HOUR + HOUR;
  const from = end - 24 * HOUR;
  const slots = Array.from({ length: 24 }, (_, i) => from + i * HOUR);
  const answers = await Promise.all(slots.map((t) =>
    get("history", { site, zone: zoneName, rack, from: rfc3339(t), to: rfc3339(Math.min(t + HOUR, now)) })));
  const points = answers.map((answer, i) => {
    const inlets = (answer.sensors || []).filter((r) => r.kind === "inlet_temp" && r.count > 0);
    if (!inlets.length) return { t: slots[i], avg: null, min: null, max: null };
    const count = inlets.reduce((a, r) => a + r.count, 0);
    return {
      t: slots[i],
      avg: inlets.reduce((a, r) => a + r.sum, 0) / count,
      min: Math.min(...inlets.map((r) => r.min)),
      max: Math.max(...inlets.map((r) => r.max)),
    };
  });
  return { points, from, to: end };
}

// One rack: current figures and the 24-hour inlet chart.
export async function rack(site, zoneName, rackName) {
  const [report, series] = await Promise.all([
    get(`zones/${encodeURIComponent(zoneName)}/report`, { site }),
    hourly(site, zoneName, rackName, Date.now()),
  ]);
  const bands = bandsOf(report);
  const row = (report.racks || []).find((r) => r.rack === rackName) || {};
  const t = inletNow(row);
  const band = classify(t, bands);
  const withData = series.points.filter((p) => Number.isFinite(p.avg));
  return h("section", {},
    h("p", { class: "crumbs" }, link("Site", ""), " › ", link(`${site} / ${zoneName}`, "zone", site, zoneName), " › ", rackName),
    h("h1", {}, `Rack ${rackName}`),
    h("div", { class: "totals" },
      h("div", { class: `total band-${band}`, id: "rack-now", "data-band": band }, h("b", {}, celsius(t)), `now (${describe(band)})`),
      h("div", { class: "total" }, h("b", {}, celsius(row.inlet_avg)), "average (report window)"),
      h("div", { class: "total" }, h("b", {}, celsius(row.inlet_max)), "max (report window)"),
      h("div", { class: "total" }, h("b", {}, String(row.open_incidents ?? 0)), "open incidents")),
    h("h2", {}, "Inlet temperature, last 24 hours (hourly average, min–max shaded)"),
    h("div", { class: "chartbox", id: "rack-chart", "data-points": withData.length },
      temperatureChart(series.points, series.from, series.to, bands)),
    withData.length ? null : h("p", { class: "muted" }, "No roll-up for this rack in the last 24 hours."),
    legend(bands));
}

function chronicle(entries) {
  if (!entries || !entries.length) return h("p", { class: "muted" }, "Nothing recorded yet.");
  return h("ol", { class: "chronicle", id: "chronicle" }, entries.map((e) =>
    h("li", { "data-kind": e.kind },
      h("time", {}, when(e.at)), " ", badge(String(e.kind).replace("_", " "), e.kind), " ",
      h("span", { class: "who" }, e.who), " ", h("span", { class: "text" }, e.text))));
}

function cause(probable) {
  if (!probable) return null;
  return h("div", { class: "card cause" },
    h("h2", {}, "Probable cause"),
    h("p", {}, probable.summary || String(probable.kind || "")),
    probable.evidence && probable.evidence.length ? h("ul", {}, probable.evidence.map((e) => h("li", {}, e))) : null);
}

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// Every incident, open ones first, newest first.
export async function incidents() {
  const list = await get("incidents");
  list.sort((a, b) => (a.status === "open" ? 0 : 1) - (b.status === "open" ? 0 : 1) || b.opened_at - a.opened_at);
  const open = list.filter((i) => i.status === "open");
  const node = table(["id", "zone", "category", "severity", "status", "opened", "sources"], incidentRows(list), "No incident.");
  if (node.tagName === "DIV") node.querySelector("table").id = "incident-list";
  return h("section", {}, h("h1", {}, "Incidents"),
    h("p", { class: "muted" }, `${open.length} open, ${list.length - open.length} resolved`), node);
}

// One incident: facts, chronicle (events, state changes, actions, pages) and raw timeline.
export async function incident(id) {
  const i = await get(`incidents/${encodeURIComponent(id)}`);
  return h("section", {},
    h("p", { class: "crumbs" }, link("Incidents", "incidents"), " › ", i.id),
    h("h1", {}, `Incident ${i.id}`),
    facts([
      ["zone", link(`${i.fingerprint.site} / ${i.fingerprint.zone}`, "zone", i.fingerprint.site, i.fingerprint.zone)],
      ["category", i.fingerprint.category], ["severity", badge(i.severity, i.severity)],
      ["status", badge(i.status, i.status)], ["opened", when(i.opened_at)],
      ["resolved", i.resolved_at ? when(i.resolved_at) : null],
      ["active sources", (i.active_sources || []).join(", ")],
      ["problem", i.problem ? link(i.problem, "problem", i.problem) : null],
      ["acknowledged", i.acknowledged ? `${i.acknowledged.actor || ""} ${when(i.acknowledged.at)}` : null],
      ["workaround", i.workaround],
    ]),
    cause(i.probable_cause),
    h("h2", {}, "Chronicle"), chronicle(i.chronicle),
    h("h2", {}, "Timeline (events)"),
    table(["time", "agent", "state", "severity", "what"], (i.timeline || []).map((e) =>
      [when(e.ts), e.agent, e.state, e.severity, e.text])));
}

// Every problem.
export async function problems() {
  const list = await get("problems");
  const node = table(["id", "zone", "category", "status", "opened", "reason"], problemRows(list), "No problem.");
  if (node.tagName === "DIV") node.querySelector("table").id = "problem-list";
  return h("section", {}, h("h1", {}, "Problems"), node);
}

// One problem: facts, probable cause, chronicle and its incidents.
export async function problem(id) {
  const p = await get(`problems/${encodeURIComponent(id)}`);
  return h("section", {},
    h("p", { class: "crumbs" }, link("Problems", "problems"), " › ", p.id),
    h("h1", {}, `Problem ${p.id}`),
    facts([
      ["zone", link(`${p.fingerprint.site} / ${p.fingerprint.zone}`, "zone", p.fingerprint.site, p.fingerprint.zone)],
      ["status", badge(p.status, p.status)], ["trigger", p.trigger], ["reason", p.reason],
      ["opened", when(p.opened_at)], ["resolved", p.resolved_at ? when(p.resolved_at) : null],
      ["reopened", p.reopened ? `${p.reopened} time(s)` : null],
      ["root cause", p.root_cause], ["workaround", p.workaround],
    ]),
    cause(p.probable_cause),
    h("h2", {}, "Chronicle"), chronicle(p.chronicle),
    h("h2", {}, "Incidents"),
    h("ul", {}, (p.incidents || []).map((i) => h("li", {}, link(i, "incident", i)))));
}

// Silences and maintenance windows (served with the operator API).
export async function silences() {
  const list = await get("silences", {}, null);
  if (list === null) {
    return h("section", {}, h("h1", {}, "Silences"),
      h("p", { class: "muted" }, "This collector serves no silences (its operator API is off)."));
  }
  const now = Date.now();
  return h("section", {}, h("h1", {}, "Silences"),
    table(["id", "site", "zone", "category", "from", "until", "state", "by", "comment"], list.map((x) => [
      String(x.id), x.site || "any", x.zone || "any", x.category || "any", when(x.starts_at), when(x.ends_at),
      x.starts_at > now ? badge("scheduled", "warning") : x.ends_at <= now ? badge("ended", "resolved") : badge("active", "open"),
      x.created_by || "", x.comment || "",
    ]), "No silence."));
}
