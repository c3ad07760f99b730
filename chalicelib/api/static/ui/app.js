// NEXUS Scheduler dashboard: the shell (header, navigation, session), the hash router and the
// one live connection every view listens to.

import { session } from "./api.js";
import { announce, h, notice, pageHeading, replace } from "./dom.js";
import { refreshRelativeTimes } from "./format.js";
import { Live } from "./live.js";
import * as jobForm from "./view-form.js";
import * as jobPage from "./view-job.js";
import * as jobsPage from "./view-jobs.js";
import * as keysPage from "./view-keys.js";
import * as signIn from "./view-signin.js";
import * as statsPage from "./view-stats.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const navKeys = document.getElementById("nav-keys");
const sessionBar = document.getElementById("session");
const liveState = document.getElementById("live-state");
const live = new Live(() => session.key);

const ROUTES = [
  { pattern: /^\/jobs$/, view: jobsPage, nav: "jobs" },
  { pattern: /^\/jobs\/(\d+)$/, view: jobPage, nav: "jobs", params: ["id"] },
  { pattern: /^\/jobs\/(\d+)\/edit$/, view: jobForm, nav: "jobs", params: ["id"] },
  { pattern: /^\/new$/, view: jobForm, nav: "new" },
  { pattern: /^\/stats$/, view: statsPage, nav: "stats" },
  { pattern: /^\/keys$/, view: keysPage, nav: "keys" },
];

let cleanup = null;
let controller = null;
let firstRender = true;
let signInMessage = null;

/** The hash as {path, query}: "#/jobs?type=cron" → {path: "/jobs", query: URLSearchParams}. */
export function currentRoute() {
  const raw = window.location.hash.replace(/^#/, "") || "/jobs";
  const [path, search = ""] = raw.split("?");
  return { path: path || "/jobs", query: new URLSearchParams(search) };
}

/** Change the hash's query without a navigation (a view's filters, kept for back/forward). */
export function setQuery(path, query) {
  const search = new URLSearchParams(
    Object.entries(query).filter(([, v]) => v !== null && v !== undefined && v !== ""),
  ).toString();
  window.history.replaceState(null, "", `#${path}${search ? `?${search}` : ""}`);
}

function navigate(hash) {
  if (window.location.hash === hash) render();
  else window.location.hash = hash;
}

function setTitle(text) {
  document.title = text ? `${text} · NEXUS Scheduler` : "NEXUS Scheduler";
}

function showShell(signedIn) {
  nav.hidden = !signedIn;
  sessionBar.hidden = !signedIn;
  navKeys.hidden = !(signedIn && session.isAdmin);
}

function markNav(name) {
  for (const link of nav.querySelectorAll("a[data-route]")) {
    if (link.dataset.route === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function render() {
  if (cleanup) {
    try {
      cleanup();
    } catch (error) {
      console.warn("view cleanup failed", error);
    }
    cleanup = null;
  }
  if (controller) controller.abort();
  controller = new AbortController();
  const container = h("div", { class: "view" });
  replace(main, container);
  const { path, query } = currentRoute();
  const ctx = { root: container, live, navigate, setTitle, setQuery, signal: controller.signal, query, path };

  if (!session.key) {
    showShell(false);
    markNav(null);
    ctx.message = signInMessage;
    signInMessage = null;
    ctx.onSignedIn = (key, isAdmin) => {
      session.start(key, isAdmin);
      showShell(true);
      live.start();
      announce("Signed in.");
      render(); // the page the hash names (the jobs by default)
    };
    cleanup = signIn.render(ctx);
    finish();
    return;
  }

  showShell(true);
  live.start();
  const route = ROUTES.find((r) => r.pattern.test(path));
  if (!route) {
    markNav(null);
    setTitle("Not found");
    container.append(
      pageHeading("Page not found"),
      notice("warning", null, `There is no page at #${path}.`, {
        actions: h("a", { href: "#/jobs", class: "btn btn--secondary" }, "Go to the jobs"),
      }),
    );
    finish();
    return;
  }
  markNav(route.nav);
  const match = route.pattern.exec(path);
  ctx.params = Object.fromEntries((route.params || []).map((name, i) => [name, match[i + 1]]));
  try {
    cleanup = route.view.render(ctx) || null;
  } catch (error) {
    console.error(error);
    container.append(notice("error", "This page failed to show", String(error)));
  }
  finish();
}

function finish() {
  // After navigation, move focus to the new page's heading (not on first load: the browser
  // starts at the top of the page, as expected).
  if (!firstRender) {
    const heading = main.querySelector(".page-title");
    if (heading) heading.focus({ preventScroll: false });
  }
  firstRender = false;
}

function signOut(message) {
  live.stop();
  session.end();
  signInMessage = message || null;
  if (window.location.hash !== "#/jobs") window.history.replaceState(null, "", "#/jobs");
  render();
  announce(message ? message : "Signed out.", { assertive: Boolean(message) });
}

// -- the live indicator --------------------------------------------------------------------

const STATE_WORDS = {
  connecting: "Connecting",
  live: "Live",
  reconnecting: "Reconnecting",
  unavailable: "Live updates off",
  off: "Offline",
};

live.addEventListener("state", (e) => {
  const { state, message } = e.detail;
  liveState.dataset.state = state;
  liveState.querySelector(".live-state__text").textContent = STATE_WORDS[state] || state;
  liveState.title = message || (state === "live" ? "Live updates are on" : "");
});

// -- wiring ----------------------------------------------------------------------------------

document.getElementById("sign-out").addEventListener("click", () => signOut());
// The skip link moves focus to the content; as a plain link it would change the route.
document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", render);
window.addEventListener("nexus:unauthorized", (e) => {
  if (session.key) signOut(`Your key was refused: ${e.detail} Sign in again.`);
});
window.setInterval(() => refreshRelativeTimes(main), 1000);

render();
