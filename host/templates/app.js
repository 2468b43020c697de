// The admin UI's only script, served from /static/app.js so the pages' CSP
// allows no inline script at all.
document.addEventListener("submit", (e) => {
  const message = e.target.dataset && e.target.dataset.confirm;
  if (message && !window.confirm(message)) e.preventDefault();
});
// Obtain New Token in a window of its own: the provider's sign-in opens in
// a popup, and when it comes back the popup tells this page (same origin,
// through a BroadcastChannel, which works even when the provider cut the
// popup's link to its opener) and closes; this page then updates in place.
// Without script, or with popups blocked, the whole page goes there and back.
const oauthChannel = "BroadcastChannel" in window ? new BroadcastChannel("registry-oauth") : null;
document.addEventListener("submit", (e) => {
  const form = e.target;
  if (e.defaultPrevented || !oauthChannel || !form.dataset || form.dataset.popup === undefined) return;
  const popup = window.open("about:blank", "registry-oauth", "popup,width=620,height=760");
  if (!popup) {
    // Blocked: this page goes to the provider itself.
    form.removeAttribute("target");
    form.querySelector("[name=popup]").value = "0";
    return;
  }
  // The provider's pages must not be able to steer this tab.
  popup.opener = null;
  form.target = "registry-oauth";
  form.querySelector("[name=popup]").value = "1";
});
if (oauthChannel) {
  oauthChannel.addEventListener("message", (e) => {
    const next = e.data && e.data.next;
    const form = document.querySelector("form[data-popup]");
    if (typeof next !== "string" || !form || next !== form.getAttribute("action").replace(/\/token$/, "")) return;
    fetch(next, { credentials: "same-origin" })
      .then((r) => r.text())
      .then((html) => {
        const page = new DOMParser().parseFromString(html, "text/html");
        const fresh = page.querySelector("main");
        if (fresh) document.querySelector("main").replaceChildren(...fresh.childNodes);
      });
  });
}
document.addEventListener("DOMContentLoaded", () => {
  const done = document.querySelector("[data-oauth-done]");
  if (!done) return;
  if (oauthChannel) oauthChannel.postMessage({ next: done.dataset.oauthDone });
  window.close();
});
document.addEventListener("click", (e) => {
  const button = e.target.closest && e.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (source && navigator.clipboard) navigator.clipboard.writeText(source.value).then(() => { button.textContent = "Copied"; });
});
document.addEventListener("change", (e) => {
  const select = e.target;
  if (select.dataset && select.dataset.reload) location = select.dataset.reload + encodeURIComponent(select.value);
});
// After a refused form, focus the first field in error (or the summary).
document.addEventListener("DOMContentLoaded", () => {
  const first = document.querySelector("[aria-invalid=true]") || document.querySelector(".field.invalid input, .field.invalid select");
  if (first) first.focus();
});
// Settings that apply only for some values of another (the plugin says
// which): hidden otherwise. Without script every field shows.
function applyConditions() {
  document.querySelectorAll("[data-shown-when]").forEach((field) => {
    const control = document.querySelector(`[name="${field.dataset.shownWhen}"]`);
    if (!control) return;
    field.hidden = !field.dataset.shownValues.split(" ").includes(control.value);
  });
}
document.addEventListener("DOMContentLoaded", applyConditions);
document.addEventListener("change", applyConditions);
// The Server URL's choices (the plugin's): the name field only for a
// choice with {name}, labelled as the plugin says; the URL field only for
// Custom. Without script both show, and the choice decides.
function applyUrlChoice() {
  const select = document.querySelector("[data-url-choice]");
  if (!select) return;
  const nameLabel = select.selectedOptions[0] ? select.selectedOptions[0].dataset.nameLabel : "";
  document.querySelector("[data-url-name]").hidden = !nameLabel;
  if (nameLabel) document.querySelector("[data-url-name-label]").textContent = nameLabel;
  document.querySelector("[data-url-custom]").hidden = select.value !== "custom";
}
document.addEventListener("DOMContentLoaded", applyUrlChoice);
document.addEventListener("change", applyUrlChoice);
// Email and identifier rows: add one (a copy of the last, emptied, with
// the next index) or remove one. Without script, clearing a row drops it.
document.addEventListener("click", (e) => {
  const add = e.target.closest && e.target.closest("[data-add-row]");
  if (add) {
    const kind = add.dataset.addRow;
    const rows = document.querySelectorAll(`[data-row="${kind}"]`);
    const last = rows[rows.length - 1];
    if (!last) return;
    const next = Math.max(...[...rows].map((r) => Number((r.querySelector("[name]").name.match(/_(\d+)_/) || [0, 0])[1]))) + 1;
    const copy = last.cloneNode(true);
    copy.querySelectorAll("[name], [id], [for]").forEach((el) => {
      for (const attr of ["name", "id", "for"]) {
        if (el.hasAttribute(attr)) el.setAttribute(attr, el.getAttribute(attr).replace(/_(\d+)_/, `_${next}_`));
      }
      if (el.type === "checkbox") el.checked = false;
      else if ("value" in el && el.tagName === "INPUT") el.value = "";
      el.removeAttribute("aria-invalid");
    });
    copy.querySelectorAll(".field-error").forEach((el) => el.remove());
    copy.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
    last.after(copy);
    const first = copy.querySelector("input[type=text]");
    if (first) first.focus();
    return;
  }
  const remove = e.target.closest && e.target.closest("[data-remove-row]");
  if (remove) {
    const row = remove.closest("[data-row]");
    const siblings = document.querySelectorAll(`[data-row="${row.dataset.row}"]`);
    if (siblings.length > 1) row.remove();
    else row.querySelectorAll("input[type=text]").forEach((el) => { el.value = ""; });
  }
});
