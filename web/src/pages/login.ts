/** Sign in and register. */
import type { Ctx } from "../context";
import { h } from "../lib/dom";
import { navigate, type Route } from "../lib/router";
import { fromAnswer, type TokenAnswer } from "../lib/tokens";

function card(title: string, form: HTMLFormElement, footer: HTMLElement): HTMLElement {
  return h(
    "div",
    { class: "auth" },
    h(
      "div",
      { class: "auth-card" },
      h("div", { class: "brand big" }, "FleetPulse"),
      h("h1", null, title),
      form,
      footer,
    ),
  );
}

function field(label: string, input: HTMLInputElement): HTMLLabelElement {
  return h("label", null, h("span", null, label), input);
}

function signedIn(ctx: Ctx, answer: TokenAnswer, route: Route): void {
  ctx.tokens.set(fromAnswer(answer, Date.now()));
  const next = route.query.get("next");
  navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/", true);
}

export function loginPage(ctx: Ctx, host: HTMLElement, route: Route): void {
  const email = h("input", {
    type: "email",
    name: "email",
    required: true,
    autocomplete: "username",
    autofocus: true,
  });
  const password = h("input", {
    type: "password",
    name: "password",
    required: true,
    autocomplete: "current-password",
  });
  const error = h("p", { class: "error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", null, field("Email", email), field("Password", password), error, submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    error.textContent = "";
    ctx.client
      .login(email.value.trim(), password.value)
      .then((answer) => signedIn(ctx, answer, route))
      .catch((e: Error) => {
        error.textContent = e.message;
        submit.disabled = false;
      });
  });
  host.append(card("Sign in", form, h("p", null, "No account? ", h("a", { href: "/register" }, "Register"))));
  email.focus();
}

export function registerPage(ctx: Ctx, host: HTMLElement, route: Route): void {
  const email = h("input", { type: "email", name: "email", required: true, autocomplete: "email" });
  const username = h("input", { name: "username", required: true, minlength: 2, autocomplete: "username" });
  const password = h("input", {
    type: "password",
    name: "password",
    required: true,
    minlength: 8,
    autocomplete: "new-password",
  });
  const error = h("p", { class: "error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, "Create account");
  const form = h(
    "form",
    null,
    field("Email", email),
    field("Username", username),
    field("Password (8 characters or more)", password),
    error,
    submit,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    error.textContent = "";
    ctx.client
      .register(email.value.trim(), username.value.trim(), password.value)
      .then((answer) => signedIn(ctx, answer, route))
      .catch((e: Error) => {
        error.textContent = e.message;
        submit.disabled = false;
      });
  });
  host.append(
    card("Create an account", form, h("p", null, "Have one? ", h("a", { href: "/login" }, "Sign in"))),
  );
  email.focus();
}
