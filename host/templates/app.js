// The admin UI's only script, served from /static/app.js so the pages' CSP
// allows no inline script at all.
document.addEventListener("submit", (e) => {
  const message = e.target.dataset && e.target.dataset.confirm;
  if (message && !window.confirm(message)) e.preventDefault();
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
