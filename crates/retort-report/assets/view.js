// retort view: lists a run's records and shows one with its lineage. Every value from the run
// is put on the page as text (textContent), never as markup: model output is untrusted.
"use strict";

const PAGE = 50;
const state = { offset: 0, total: 0, selected: null, steps: "", rounds: "" };
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function asText(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(url + ": HTTP " + response.status);
  return response.json();
}

function setOptions(select, values, key) {
  const joined = values.join("\n");
  if (state[key] === joined) return;
  state[key] = joined;
  const current = select.value;
  while (select.options.length > 1) select.remove(1);
  for (const value of values) {
    const option = el("option", null, value);
    option.value = value;
    select.appendChild(option);
  }
  select.value = values.includes(current) ? current : "";
}

async function refreshSummary() {
  const summary = await getJSON("/api/summary");
  $("title").textContent = "retort view: " + (summary.recipe || summary.dir);
  document.title = "retort view: " + (summary.recipe || "");
  const counts = $("counts");
  counts.replaceChildren();
  counts.appendChild(el("span", null, summary.state || "no run store"));
  let kept = 0, dropped = 0, failed = 0;
  for (const source of summary.sources) {
    if (source.kind === "kept") kept += source.rows;
    if (source.kind === "dropped") dropped += source.rows;
    if (source.kind === "failed") failed += source.rows;
  }
  counts.appendChild(el("span", "count-kept", "kept " + kept));
  counts.appendChild(el("span", "count-dropped", "dropped " + dropped));
  counts.appendChild(el("span", "count-failed", "failed " + failed));
  if (summary.answers !== null) counts.appendChild(el("span", null, "answers stored " + summary.answers));
  if (summary.elapsed_s !== null) counts.appendChild(el("span", null, summary.elapsed_s.toFixed(0) + " s"));
  const flying = summary.steps.reduce((sum, step) => sum + Math.max(0, step.in_flight), 0);
  if (summary.alive) counts.appendChild(el("span", null, "in flight " + flying));
  for (const model of summary.models) counts.appendChild(el("span", "note", model));
  setOptions($("step"), summary.steps.map((step) => step.step), "steps");
  setOptions($("round"), summary.rounds.map(String), "rounds");
  return summary;
}

function query() {
  const params = new URLSearchParams();
  for (const id of ["status", "step", "round", "q"]) {
    const value = $(id).value.trim();
    if (value) params.set(id, value);
  }
  params.set("offset", String(state.offset));
  params.set("limit", String(PAGE));
  return params.toString();
}

async function refreshList() {
  const page = await getJSON("/api/records?" + query());
  state.total = page.total;
  const list = $("list");
  list.replaceChildren();
  for (const item of page.items) {
    const key = item.source + "/" + item.line;
    const row = el("li", item.kind + (key === state.selected ? " selected" : ""));
    row.dataset.key = key;
    const meta = [item.kind, item.source + ":" + item.line];
    if (item.step) meta.push(item.step);
    if (item.round !== null && item.round !== undefined) meta.push("round " + item.round);
    row.appendChild(el("div", "meta", meta.join(" · ")));
    row.appendChild(el("div", null, item.preview));
    if (item.reason) row.appendChild(el("div", "meta", item.reason));
    row.addEventListener("click", () => select(key));
    list.appendChild(row);
  }
  const last = Math.min(state.offset + page.items.length, page.total);
  $("shown").textContent = page.total === 0 ? "no records match" : (state.offset + 1) + "–" + last + " of " + page.total;
  $("prev").disabled = state.offset === 0;
  $("next").disabled = last >= page.total;
}

function isConversation(value) {
  return Array.isArray(value) && value.length > 0 && value.every((item) => item && typeof item === "object" && ("role" in item || "from" in item));
}

function turns(messages) {
  const box = el("div", "turns");
  for (const message of messages) {
    const role = message.role || message.from || "?";
    const turn = el("div", "turn " + String(role).replace(/[^a-z_]/gi, ""));
    turn.appendChild(el("span", "role", role));
    let content = asText(message.content !== undefined ? message.content : message.value);
    if (message.tool_calls) content += (content ? "\n" : "") + asText(message.tool_calls);
    turn.appendChild(el("pre", null, content));
    box.appendChild(turn);
  }
  return box;
}

function valueNode(value) {
  return isConversation(value) ? turns(value) : el("pre", null, asText(value));
}

async function select(key) {
  state.selected = key;
  for (const row of $("list").children) row.classList.toggle("selected", row.dataset.key === key);
  const [source, line] = key.split("/");
  const record = await getJSON("/api/record/" + encodeURIComponent(source) + "/" + line);
  const detail = $("detail");
  detail.replaceChildren();
  const head = [record.kind, record.source + ":" + record.line];
  if (record.id) head.push(record.id);
  if (record.step) head.push(record.step);
  detail.appendChild(el("h3", null, head.join(" · ")));
  if (record.reason) detail.appendChild(el("p", "reason", "reason: " + record.reason));
  if (record.raw) {
    detail.appendChild(el("h4", null, "raw answer"));
    detail.appendChild(el("pre", "answer", record.raw));
  }
  const fields = record.fields && typeof record.fields === "object" ? record.fields : {};
  const shown = new Set();
  if ("chosen" in fields && "rejected" in fields) {
    const pair = el("div", "pair");
    for (const side of ["chosen", "rejected"]) {
      const column = el("div");
      const score = fields[side + "_score"];
      column.appendChild(el("h4", null, side + (score !== undefined ? " (score " + asText(score) + ")" : "")));
      column.appendChild(valueNode(fields[side]));
      pair.appendChild(column);
      shown.add(side);
    }
    detail.appendChild(pair);
  }
  for (const [name, value] of Object.entries(fields)) {
    if (shown.has(name)) continue;
    detail.appendChild(el("h4", null, name));
    detail.appendChild(valueNode(value));
  }
  if (Array.isArray(record.lineage) && record.lineage.length) {
    detail.appendChild(el("h3", null, "lineage"));
    for (const entry of record.lineage) {
      const box = el("details", "sample");
      box.appendChild(el("summary", null, entry.field + " ← " + entry.step + " · " + entry.backend + ":" + entry.model + (entry.finish_reason ? " · " + entry.finish_reason : "")));
      box.appendChild(el("h4", null, "messages sent"));
      box.appendChild(turns(entry.prompt || []));
      box.appendChild(el("h4", null, "parameters"));
      box.appendChild(el("pre", null, asText(entry.params)));
      box.appendChild(el("p", "note", "request key " + entry.request_key));
      detail.appendChild(box);
    }
  }
}

function report(error) {
  $("error").textContent = String(error);
}

function reload() {
  state.offset = 0;
  refreshList().catch(report);
}

window.addEventListener("DOMContentLoaded", () => {
  for (const id of ["status", "step", "round"]) $(id).addEventListener("change", reload);
  $("search").addEventListener("click", reload);
  $("q").addEventListener("keydown", (event) => { if (event.key === "Enter") reload(); });
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); refreshList().catch(report); });
  $("next").addEventListener("click", () => { state.offset += PAGE; refreshList().catch(report); });
  refreshSummary().then(refreshList).catch(report);
  setInterval(() => {
    if (!$("live").checked) return;
    refreshSummary().then(refreshList).then(() => { $("error").textContent = ""; }).catch(report);
  }, 2000);
});
