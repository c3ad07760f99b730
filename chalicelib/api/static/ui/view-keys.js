// #/keys: API keys, for keys:admin — list, create (the new key is shown once), revoke.

import { ApiError, del, detailLines, get, post } from "./api.js";
import { announce, badge, confirmDialog, h, nextId, notice, pageHeading, replace, spinner } from "./dom.js";
import { parseTime, timeElement } from "./format.js";

const SCOPES = [
  ["jobs:read", "See jobs, runs and stats"],
  ["jobs:write", "Create, change, pause and delete jobs"],
  ["jobs:execute", "Run jobs on demand"],
  ["keys:admin", "Manage keys and read the audit trail"],
];

function cell(label, content) {
  return h("td", { dataset: { label } }, h("div", { class: "cell" }, content));
}

function keyState(key) {
  if (key.revoked_at) return "revoked";
  const expires = parseTime(key.expires_at);
  if (expires && expires.getTime() <= Date.now()) return "expired";
  return "active";
}

export function render(ctx) {
  ctx.setTitle("API keys");
  const listBody = h("div", null, spinner("Loading the keys"));
  const created = h("div", { class: "new-key-slot" });
  const formErrors = h("div");

  // -- create ------------------------------------------------------------------------------------
  const nameInput = h("input", { id: "key-name", class: "input", required: true, maxlength: "200", autocomplete: "off", "aria-describedby": "key-name-err" });
  const scopeBoxes = SCOPES.map(([scope, words]) => {
    const id = nextId("scope");
    const box = h("input", { type: "checkbox", id, value: scope, checked: scope === "jobs:read" });
    return h("div", { class: "check" }, box, h("label", { for: id }, h("code", { class: "code-inline" }, scope), h("span", { class: "check__hint" }, ` ${words}`)));
  });
  const expires = h("input", { id: "key-expires", type: "datetime-local", class: "input", "aria-describedby": "key-expires-help" });
  const rate = h("input", { id: "key-rate", type: "number", min: "1", step: "1", class: "input input--narrow", placeholder: "20" });
  const burst = h("input", { id: "key-burst", type: "number", min: "1", step: "1", class: "input input--narrow", placeholder: "40" });
  const executeRate = h("input", { id: "key-execute-rate", type: "number", min: "1", step: "1", class: "input input--narrow", placeholder: "2" });
  const submit = h("button", { type: "submit", class: "btn btn--primary" }, "Create key");

  const form = h(
    "form",
    { class: "key-form", novalidate: true, "aria-labelledby": "create-key-title" },
    h(
      "div",
      { class: "form-grid" },
      h("div", { class: "field", dataset: { field: "name" } }, h("label", { for: "key-name", class: "field__label" }, "Name", h("span", { class: "field__req", "aria-hidden": "true" }, " *")), nameInput, h("p", { id: "key-name-err", class: "field__error", hidden: true })),
      h("div", { class: "field" }, h("label", { for: "key-expires", class: "field__label" }, "Expires (optional)"), expires, h("p", { id: "key-expires-help", class: "field__help" }, "In your time zone. Leave empty for a key that does not expire.")),
      h(
        "fieldset",
        { class: "field field--wide", dataset: { field: "scopes" }, "aria-describedby": "key-scopes-err" },
        h("legend", { class: "field__label" }, "Scopes"),
        h("div", { class: "checks" }, scopeBoxes),
        h("p", { id: "key-scopes-err", class: "field__error", hidden: true }),
      ),
      h(
        "details",
        { class: "field--wide advanced" },
        h("summary", null, "Rate limit"),
        h(
          "div",
          { class: "form-grid form-grid--3" },
          h("div", { class: "field" }, h("label", { for: "key-rate", class: "field__label" }, "Requests a second"), rate),
          h("div", { class: "field" }, h("label", { for: "key-burst", class: "field__label" }, "Burst"), burst),
          h("div", { class: "field" }, h("label", { for: "key-execute-rate", class: "field__label" }, "Runs on demand a second"), executeRate),
        ),
      ),
    ),
    formErrors,
    h("div", { class: "form-actions" }, submit),
  );

  ctx.root.append(
    h("div", { class: "page-head" }, pageHeading("API keys")),
    h("p", { class: "page-sub" }, "Keys for people and programs calling the API. A key is shown once, when it is made; only its prefix is kept in view."),
    created,
    h("section", { class: "card", "aria-labelledby": "create-key-title" }, h("h2", { id: "create-key-title", class: "card__title" }, "New key"), form),
    h("section", { class: "card card--flush", "aria-labelledby": "keys-title" }, h("div", { class: "card__head" }, h("h2", { id: "keys-title", class: "card__title" }, "Keys")), listBody),
  );

  function fieldError(fieldName, message) {
    const el = form.querySelector(`[data-field="${fieldName}"] .field__error`);
    if (!el) return false;
    el.textContent = message;
    el.hidden = !message;
    const control = fieldName === "name" ? nameInput : null;
    if (control) {
      if (message) control.setAttribute("aria-invalid", "true");
      else control.removeAttribute("aria-invalid");
    }
    return true;
  }

  function showCreated(key) {
    const secret = h("input", { class: "input input--mono", readonly: true, value: key.key, id: "new-key-value", "aria-label": `The new key ${key.name}` });
    const copy = h("button", { type: "button", class: "btn btn--secondary" }, "Copy");
    const done = h("button", { type: "button", class: "btn btn--ghost" }, "Done");
    const status = h("p", { class: "field__help", role: "status" });
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(key.key);
        status.textContent = "Copied to the clipboard.";
      } catch {
        secret.select();
        status.textContent = "Select and copy the key (Ctrl+C / ⌘C).";
      }
    });
    const heading = h("h2", { class: "notice__title", tabindex: "-1" }, `Key “${key.name}” created`);
    const panel = h(
      "section",
      { class: "notice notice--success new-key", "aria-labelledby": "new-key-heading" },
      heading,
      h("p", null, h("strong", null, "Copy it now: it will not be shown again."), " Whoever holds it can act with its scopes until it is revoked."),
      h("div", { class: "input-group" }, secret, copy),
      status,
      h("div", { class: "notice__actions" }, done),
    );
    heading.id = "new-key-heading";
    done.addEventListener("click", () => {
      replace(created);
      nameInput.focus();
    });
    replace(created, panel);
    heading.focus();
    secret.select();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(formErrors);
    fieldError("name", "");
    fieldError("scopes", "");
    const scopes = scopeBoxes.map((el) => el.querySelector("input")).filter((el) => el.checked).map((el) => el.value);
    const body = { name: nameInput.value.trim(), scopes };
    if (expires.value) {
      const at = new Date(expires.value); // a datetime-local value reads as the viewer's time
      if (Number.isNaN(at.getTime())) {
        replace(formErrors, notice("error", "The expiry date is not valid", null));
        return;
      }
      body.expires_at = at.toISOString().replace(/\.\d{3}Z$/, "Z");
    }
    const limit = {};
    for (const [field, el] of [["rate", rate], ["burst", burst], ["execute_rate", executeRate]]) {
      if (el.value.trim()) limit[field] = Number(el.value);
    }
    if (Object.keys(limit).length) body.rate_limit = limit;
    submit.disabled = true;
    try {
      const made = await post("/keys", body, { signal: ctx.signal });
      form.reset();
      scopeBoxes[0].querySelector("input").checked = true;
      announce(`Key “${made.name}” created. Copy it now: it is shown once.`);
      showCreated(made);
      load();
    } catch (error) {
      if (error.name === "AbortError") return;
      const rest = [];
      if (error instanceof ApiError && error.status === 422) {
        for (const p of error.problems) {
          if (!fieldError(p.field, p.msg)) rest.push(`${p.path.join(".") || "body"}: ${p.msg}`);
        }
        if (rest.length || !error.problems.length) replace(formErrors, notice("error", "The key was not created", rest.length ? rest : detailLines(error)));
        else replace(formErrors, notice("error", "The key was not created", "See the messages above."));
      } else {
        replace(formErrors, notice("error", error instanceof ApiError ? error.title : "The key was not created", detailLines(error)));
      }
    } finally {
      submit.disabled = false;
    }
  });

  // -- list and revoke ------------------------------------------------------------------------

  async function revoke(key, button) {
    const ok = await confirmDialog({
      title: `Revoke “${key.name}”?`,
      message: [h("p", null, "Every call made with ", h("code", { class: "code-inline" }, key.prefix), " is refused from now on. This cannot be undone.")],
      confirmLabel: "Revoke key",
      danger: true,
    });
    if (!ok) return;
    button.disabled = true;
    try {
      await del(`/keys/${encodeURIComponent(key.id)}`, { signal: ctx.signal });
      announce(`Key “${key.name}” revoked.`);
      await load();
      const heading = document.getElementById("keys-title");
      if (heading) heading.setAttribute("tabindex", "-1");
      if (heading) heading.focus();
    } catch (error) {
      if (error.name === "AbortError") return;
      button.disabled = false;
      replace(listBody.querySelector(".list-errors") || listBody, notice("error", "The key was not revoked", detailLines(error)));
    }
  }

  function table(keys) {
    if (!keys.length) return h("p", { class: "empty" }, "No keys yet.");
    return h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table table--stack", id: "keys-table" },
        h("caption", { class: "visually-hidden" }, "API keys"),
        h("thead", null, h("tr", null, ["Name", "Prefix", "Scopes", "Status", "Created", "Last used", "Expires", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
        h(
          "tbody",
          null,
          keys.map((key) => {
            const state = keyState(key);
            const button = state === "active"
              ? h("button", { type: "button", class: "btn btn--danger-outline btn--small", "aria-label": `Revoke ${key.name}` }, "Revoke")
              : null;
            if (button) button.addEventListener("click", () => revoke(key, button));
            return h(
              "tr",
              { dataset: { keyId: key.id } },
              h("th", { scope: "row", dataset: { label: "Name" } }, h("div", { class: "cell" }, key.name)),
              cell("Prefix", h("code", { class: "code-inline code-inline--nowrap" }, key.prefix)),
              cell("Scopes", h("ul", { class: "tags" }, key.scopes.map((sc) => h("li", { class: "tag tag--scope" }, sc)))),
              cell("Status", badge(state)),
              cell("Created", timeElement(key.created_at)),
              cell("Last used", key.last_used_at ? timeElement(key.last_used_at) : h("span", { class: "muted" }, "Never")),
              cell("Expires", key.expires_at ? timeElement(key.expires_at) : h("span", { class: "muted" }, "Never")),
              cell("Actions", button || h("span", { class: "muted" }, "—")),
            );
          }),
        ),
      ),
    );
  }

  async function load() {
    try {
      const keys = await get("/keys", { signal: ctx.signal });
      keys.sort((a, b) => (keyState(a) === keyState(b) ? String(b.created_at).localeCompare(String(a.created_at)) : keyState(a) === "active" ? -1 : 1));
      replace(listBody, h("div", { class: "list-errors" }), table(keys));
    } catch (error) {
      if (error.name === "AbortError") return;
      const forbidden = error instanceof ApiError && error.status === 403;
      replace(
        listBody,
        notice(forbidden ? "warning" : "error", forbidden ? "This key cannot manage keys (it needs the keys:admin scope)" : "The keys could not be loaded", detailLines(error)),
      );
      if (forbidden) form.closest("section").hidden = true;
    }
  }

  load();
  return null;
}
