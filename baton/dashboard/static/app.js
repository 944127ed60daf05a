// baton's dashboard: renders the JSON that /dashboard/stream sends (server-sent events).
// Every text goes in through textContent: nothing baton reports can become markup.
"use strict";

let latest = null;          // the newest {now, state} frame
let offset = 0;             // server clock minus this browser's clock, in seconds
const widest = new Map();   // model -> longest remaining cooldown seen: the full width of its bar

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const serverNow = () => Date.now() / 1000 + offset;
const clock = (ts) => new Date(ts * 1000).toLocaleTimeString([], { hour12: false });

function span(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function setLink(state, text) {
  const link = document.getElementById("link");
  link.dataset.state = state;
  link.textContent = text;
}

function renderHeader(baton) {
  setLink(baton.attached ? "attached" : "detached", baton.attached ? "attached" : "detached");
  document.getElementById("summary").textContent =
    `opencode ${baton.opencode} · fallback ${baton.fallback} · ${baton.fallbacks} re-sends · ${baton.events} events`;
  const banner = document.getElementById("banner");
  const problems = [];
  if (!baton.attached) problems.push(`baton is detached from opencode: ${baton.reason || baton.state}. ` +
                                     "Sessions are not watched until it attaches again.");
  if (baton.store) problems.push(`store: ${baton.store}`);
  banner.hidden = problems.length === 0;
  banner.textContent = problems.join(" ");
}

function sessionState(s, now) {
  if (s.parked_until) return ["parked", `parked until ${clock(s.parked_until)} (${span(s.parked_until - now)})` +
                                         (s.park_model ? ` for ${s.park_model}` : "")];
  if (s.awaiting) return ["retrying", "re-sent, awaiting the answer"];
  return [s.status, s.status];
}

function renderSessions(sessions, now) {
  const body = document.querySelector("#sessions tbody");
  body.replaceChildren(...sessions.map((s) => {
    const [status, text] = sessionState(s, now);
    const moved = s.current && s.original && s.current !== s.original;
    return el("tr", { "data-session": s.id },
      el("td", { class: "mono" }, s.id),
      el("td", {}, s.agent || "—"),
      el("td", { class: moved ? "mono moved" : "mono", "data-role": "current" }, s.current || "—"),
      el("td", { class: "mono" }, s.original || "—"),
      el("td", {}, el("span", { class: "status", "data-status": status }, text)),
      el("td", {}, `${s.attempts}/${s.max_attempts}`));
  }));
  document.getElementById("sessions-empty").hidden = sessions.length > 0;
}

function renderModels(models, now) {
  const list = document.getElementById("models");
  list.replaceChildren(...models.map((m) => {
    let gauge;
    if (m.until && m.until > now) {
      const left = m.until - now;
      widest.set(m.model, Math.max(widest.get(m.model) || 0, left));
      const share = Math.min(100, (100 * left) / widest.get(m.model));
      gauge = el("div", { class: "bar", title: `cooling down until ${new Date(m.until * 1000).toLocaleString()}` },
        el("i", { style: null }),
        el("span", {}, `cooling · resets ${clock(m.until)} (in ${span(left)}) · from ${m.source || "configured"}`));
      gauge.firstChild.style.width = `${share}%`;
    } else {
      widest.delete(m.model);
      gauge = el("span", { class: "ready" }, "ready");
    }
    return el("li", { "data-model": m.model, "data-cooling": m.until && m.until > now ? "yes" : "no" },
      el("span", { class: "mono" }, m.model), gauge,
      m.chains.length ? el("span", { class: "chains" }, `in ${m.chains.join(", ")}`) : null);
  }));
}

function taskItem(t) {
  const where = t.queue_position ? `queue #${t.queue_position}` :
                t.waiting_until ? `waits for a reset at ${clock(t.waiting_until)}` : null;
  const result = ["completed", "failed", "cancelled", "interrupted"].includes(t.status)
    ? el("a", { href: `/dashboard/tasks/${encodeURIComponent(t.id)}`, target: "_blank", rel: "noopener" }, "result")
    : null;
  const item = el("li", { "data-task": t.id, "data-status": t.status },
    el("div", { class: "task" },
      el("span", { class: "status", "data-status": t.status }, t.status),
      el("span", {}, t.description),
      el("span", { class: "meta mono" }, t.id),
      el("span", { class: "meta mono" }, t.model || t.category || t.agent),
      el("span", { class: "meta" }, `${t.run_s === null ? `waiting ${span(t.age_s)}` : `ran ${span(t.run_s)}`} · ${t.mode}`),
      where ? el("span", { class: "meta" }, where) : null,
      t.end_reason && t.end_reason !== t.status ? el("span", { class: "meta" }, t.end_reason) : null,
      result));
  if (t.children.length) item.append(el("ul", {}, ...t.children.map(taskItem)));
  return item;
}

function renderTasks(groups) {
  const root = document.getElementById("tasks");
  root.replaceChildren(...groups.map((g) => el("div", { "data-parent": g.session },
    el("div", { class: "parent mono" }, `session ${g.session}`),
    el("ul", { class: "tree" }, ...g.tasks.map(taskItem)))));
  document.getElementById("tasks-empty").hidden = groups.length > 0;
}

function renderJournal(entries) {
  const list = document.getElementById("journal");
  list.replaceChildren(...entries.map((e) => el("li", { "data-kind": e.kind, "data-session": e.session },
    el("time", {}, clock(e.ts)),
    e.session ? el("span", { class: "mono" }, `${e.session} `) : null,
    el("span", { class: "kind" }, `[${e.kind}]`),
    e.text)));
  document.getElementById("journal-empty").hidden = entries.length > 0;
}

function renderFleet(fleet) {
  const section = document.getElementById("fleet-section");
  section.hidden = !fleet;
  if (!fleet) return;
  document.getElementById("fleet-where").textContent =
    `shared store ${fleet.database}; this baton is ${fleet.instance}` + (fleet.error ? ` — ${fleet.error}` : "");
  const rows = (fleet.servers || []).map((s) => el("tr", { "data-server": s.opencode },
    el("td", { class: "mono" }, s.opencode),
    el("td", { class: "mono" }, s.driver === fleet.instance ? `${s.driver} (this baton)` : (s.driver || "nobody")),
    el("td", {}, s.lease_left_s === null ? "—" : `${span(s.lease_left_s)} left`),
    el("td", {}, Object.entries(s.tasks).map(([state, n]) => `${n} ${state}`).join(", ") || "none")));
  document.querySelector("#fleet tbody").replaceChildren(...rows);
}

function render() {
  if (!latest) return;
  const now = serverNow();
  const state = latest.state;
  renderHeader(state.baton);
  renderSessions(state.sessions, now);
  renderModels(state.models, now);
  renderTasks(state.tasks);
  renderJournal(state.journal);
  renderFleet(state.fleet);
}

function connect() {
  const feed = new EventSource("/dashboard/stream");
  feed.onmessage = (message) => {
    latest = JSON.parse(message.data);
    offset = latest.now - Date.now() / 1000;
    render();
  };
  feed.onerror = () => {
    // EventSource tries again by itself; say so meanwhile. A refused cookie ends the feed for good.
    if (feed.readyState === EventSource.CLOSED) {
      setLink("offline", "not connected: open the link `baton status` prints");
    } else {
      setLink("offline", "baton is not answering; retrying…");
    }
  };
}

connect();
setInterval(render, 1000);  // countdowns move between frames
