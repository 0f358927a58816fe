// The sign-in page: a username and password (a session of the API), or a
// pasted API key kept in this tab's memory only.

import { login, useKey } from "./api.js";
import { describe, fill, h } from "./dom.js";

export function loginPage(root) {
  const username = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const password = h("input", {
    id: "password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const key = h("input", { id: "api-key", type: "password", autocomplete: "off", placeholder: "lbk_…" });
  const message = h("p", { class: "form-error", id: "login-error", role: "alert" });
  const busy = (form, on) => {
    for (const button of form.querySelectorAll("button")) button.disabled = on;
  };
  const passwordForm = h(
    "form",
    { class: "card", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in to Logbook"),
    h("label", { for: "username" }, "Username"),
    username,
    h("label", { for: "password" }, "Password"),
    password,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  const keyForm = h(
    "form",
    { class: "card key-form", "aria-labelledby": "key-title" },
    h("h2", { id: "key-title" }, "Or use an API key"),
    h("p", { class: "hint" }, "Kept in this tab's memory only; closing or reloading the tab forgets it."),
    h("label", { for: "api-key" }, "API key"),
    key,
    h("button", { type: "submit" }, "Use key"),
  );
  passwordForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    busy(passwordForm, true);
    try {
      await login(username.value, password.value);
    } catch (error) {
      message.textContent = error.status === 401 ? "The username or password is wrong." : describe(error);
      password.select();
    } finally {
      busy(passwordForm, false);
    }
  });
  keyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    busy(keyForm, true);
    try {
      await useKey(key.value.trim());
    } catch (error) {
      message.textContent = describe(error);
    } finally {
      busy(keyForm, false);
    }
  });
  fill(root, h("section", { class: "page login-page" }, passwordForm, message, keyForm));
  username.focus();
  return () => {};
}
