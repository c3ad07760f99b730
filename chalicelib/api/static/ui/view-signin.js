// Sign in with an API key. The key is checked against the API, then kept in this tab's
// sessionStorage only (sign out forgets it).

import { ApiError, call, detailLines } from "./api.js";
import { h, notice, pageHeading, replace } from "./dom.js";

async function checkKey(key) {
  // Any read tells whether the key is valid and may read jobs (401 / 403 otherwise).
  await call("GET", "/jobs", { key, query: { limit: 1 } });
  // Whether it may manage keys: the Keys page is shown only then.
  try {
    await call("GET", "/keys", { key });
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) return false;
    throw error;
  }
}

export function render(ctx) {
  ctx.setTitle("Sign in");
  const errors = h("div", { class: "form-errors", "aria-live": "polite" });
  const input = h("input", {
    id: "api-key",
    name: "api-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    autocapitalize: "off",
    required: true,
    "aria-describedby": "api-key-help",
    class: "input input--mono",
  });
  const toggle = h("button", { type: "button", class: "btn btn--ghost btn--small", "aria-pressed": "false" }, "Show");
  toggle.addEventListener("click", () => {
    const showing = input.type === "text";
    input.type = showing ? "password" : "text";
    toggle.setAttribute("aria-pressed", String(!showing));
    toggle.textContent = showing ? "Show" : "Hide";
    input.focus();
  });
  const submit = h("button", { type: "submit", class: "btn btn--primary btn--block" }, "Sign in");
  const form = h(
    "form",
    { class: "signin__form", novalidate: true },
    h(
      "div",
      { class: "field" },
      h("label", { for: "api-key", class: "field__label" }, "API key"),
      h("div", { class: "input-group" }, input, toggle),
      h(
        "p",
        { id: "api-key-help", class: "field__help" },
        "The key is kept in this browser tab only and sent with each request. Signing out, or closing the tab, forgets it.",
      ),
    ),
    errors,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    replace(errors);
    if (!key) {
      input.setAttribute("aria-invalid", "true");
      replace(errors, notice("error", "Enter an API key", "Paste the key you were given, such as nxs_…"));
      input.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      const isAdmin = await checkKey(key);
      ctx.onSignedIn(key, isAdmin);
    } catch (error) {
      input.setAttribute("aria-invalid", "true");
      const title = error instanceof ApiError && error.status === 401
        ? "This key was not accepted"
        : error instanceof ApiError && error.status === 403
          ? "This key cannot read jobs (it needs the jobs:read scope)"
          : error instanceof ApiError
            ? error.title
            : "Sign-in failed";
      replace(errors, notice("error", title, detailLines(error)));
      submit.disabled = false;
      submit.textContent = "Sign in";
      input.focus();
    }
  });

  const card = h(
    "section",
    { class: "signin card", "aria-labelledby": "signin-title" },
    h("img", { src: "ui/logo.svg", alt: "", width: "48", height: "48", class: "signin__logo" }),
    pageHeading("Sign in to NEXUS Scheduler"),
    h("p", { class: "muted" }, "Schedule, run and watch your jobs."),
    ctx.message ? notice("warning", null, ctx.message) : null,
    form,
  );
  card.querySelector("h1").id = "signin-title";
  ctx.root.append(h("div", { class: "signin-wrap" }, card));
  input.focus();
  return null;
}
