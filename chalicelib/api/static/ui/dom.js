// Small DOM helpers: elements are built with h(), never from HTML strings, so nothing the
// API returns is ever read as markup. No inline style attributes (the page's CSP forbids them).

const SVG_NS = "http://www.w3.org/2000/svg";

function append(parent, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(parent, c);
    return;
  }
  parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
}

function apply(el, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value" && "value" in el) el.value = value;
    else if (key === "checked" || key === "selected" || key === "disabled" || key === "hidden") {
      el[key] = Boolean(value);
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
  return el;
}

/** An HTML element: h("a", {href: "#/jobs", class: "link"}, "Jobs"). */
export function h(tag, props, ...children) {
  const el = apply(document.createElement(tag), props);
  append(el, children);
  return el;
}

/** An SVG element (the stats chart). */
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value !== null && value !== undefined) el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

let uid = 0;
/** A unique id for label/aria wiring. */
export function nextId(prefix = "id") {
  uid += 1;
  return `${prefix}-${uid}`;
}

// -- announcements (aria-live) --------------------------------------------------------------

/** Read `message` to screen readers (polite by default) without moving focus. */
export function announce(message, { assertive = false } = {}) {
  const region = document.getElementById(assertive ? "announce-assertive" : "announce-polite");
  if (!region) return;
  region.textContent = "";
  // A new text node a moment later, so that the same message twice is read twice.
  window.setTimeout(() => {
    region.textContent = message;
  }, 50);
}

// -- status badges ------------------------------------------------------------------------------

const STATUS_WORDS = {
  pending: "Pending",
  running: "Running",
  completed: "Completed",
  failed: "Failed",
  paused: "Paused",
  missed: "Missed",
  skipped: "Skipped",
  dead_lettered: "Dead-lettered",
  cancelled: "Cancelled",
  retrying: "Retrying",
  active: "Active",
  revoked: "Revoked",
  expired: "Expired",
};

const STATUS_ICONS = {
  pending: "○",
  running: "◐",
  completed: "✓",
  failed: "✕",
  paused: "❚❚",
  missed: "⊘",
  skipped: "↷",
  dead_lettered: "✕",
  cancelled: "⊘",
  active: "●",
  revoked: "⊘",
  expired: "⌛",
};

export function statusWord(status) {
  return STATUS_WORDS[status] || String(status || "unknown").replace(/_/g, " ");
}

/** A status as a badge: an icon and a word, never colour alone. */
export function badge(status, { label } = {}) {
  const key = String(status || "unknown");
  return h(
    "span",
    { class: ["badge", `badge--${key.replace(/[^a-z_]/gi, "")}`], dataset: { status: key } },
    h("span", { class: "badge__icon", "aria-hidden": "true" }, STATUS_ICONS[key] || "•"),
    h("span", { class: "badge__text" }, label || statusWord(key)),
  );
}

// -- notices ------------------------------------------------------------------------------------

/** A boxed message; `kind` is error, warning, info or success. Errors are alerts. */
export function notice(kind, title, detail, { actions } = {}) {
  const body = [];
  if (title) body.push(h("p", { class: "notice__title" }, title));
  if (detail) {
    const lines = Array.isArray(detail) ? detail : [detail];
    if (lines.length === 1) body.push(h("p", { class: "notice__detail" }, lines[0]));
    else body.push(h("ul", { class: "notice__list" }, lines.map((line) => h("li", null, line))));
  }
  if (actions) body.push(h("div", { class: "notice__actions" }, actions));
  return h(
    "div",
    { class: ["notice", `notice--${kind}`], role: kind === "error" ? "alert" : "status" },
    body,
  );
}

// -- confirmation dialog ----------------------------------------------------------------------

/**
 * Ask before something that cannot be undone. A native modal <dialog>: focus moves in (to
 * Cancel, the safe choice), stays inside, Escape cancels, and returns to the opener after.
 * Resolves true when confirmed.
 */
export function confirmDialog({ title, message, confirmLabel = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const titleId = nextId("dialog-title");
    const descId = nextId("dialog-desc");
    const cancel = h("button", { type: "button", class: "btn btn--secondary", value: "cancel" }, "Cancel");
    const confirm = h(
      "button",
      { type: "button", class: ["btn", danger ? "btn--danger" : "btn--primary"], value: "confirm" },
      confirmLabel,
    );
    const dialog = h(
      "dialog",
      { class: "dialog", "aria-labelledby": titleId, "aria-describedby": descId },
      h("h2", { id: titleId, class: "dialog__title" }, title),
      h("div", { id: descId, class: "dialog__body" }, message),
      h("div", { class: "dialog__actions" }, cancel, confirm),
    );
    let answer = false;
    cancel.addEventListener("click", () => dialog.close());
    confirm.addEventListener("click", () => {
      answer = true;
      dialog.close();
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener && typeof opener.focus === "function" && opener.isConnected) opener.focus();
      resolve(answer);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

// -- small widgets --------------------------------------------------------------------------

/** A <dl> of [term, value] pairs; pairs whose value is null are left out. */
export function definitionList(pairs, cls = "facts") {
  return h(
    "dl",
    { class: cls },
    pairs
      .filter(([, value]) => value !== null && value !== undefined && value !== "")
      .map(([term, value]) => h("div", { class: `${cls}__item` }, h("dt", null, term), h("dd", null, value))),
  );
}

/** JSON, short on one line, with the whole value behind a disclosure when it is long. */
export function jsonValue(value, { max = 80 } = {}) {
  if (value === null || value === undefined) return h("span", { class: "muted" }, "—");
  const compact = JSON.stringify(value);
  if (compact.length <= max) return h("code", { class: "code-inline" }, compact);
  return h(
    "details",
    { class: "json" },
    h("summary", null, h("code", { class: "code-inline" }, `${compact.slice(0, max - 1)}…`)),
    h("pre", { class: "code-block" }, JSON.stringify(value, null, 2)),
  );
}

/** Calls `fn` once input has paused for `ms`; `.cancel()` drops a pending call. */
export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => window.clearTimeout(timer);
  return wrapped;
}

/** A page heading that takes focus after navigation, so screen readers read the new page. */
export function pageHeading(text, ...extra) {
  return h("h1", { class: "page-title", tabindex: "-1" }, text, ...extra);
}

export function spinner(label = "Loading") {
  return h("p", { class: "loading", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), `${label}…`);
}
