// The console's only script: copy to clipboard, and "select all" in the token list.
// Served from this origin (the CSP allows no inline script); every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.copy);
      const status = document.querySelector("[data-copied]");
      try {
        await navigator.clipboard.writeText(field.value);
        status.textContent = "Copied to the clipboard.";
      } catch (error) {
        field.select();
        status.textContent = "Copying was refused: the token is selected, copy it by hand.";
      }
    });
  }
  const all = document.querySelector("[data-select-all]");
  if (all) {
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll("[data-row]")) box.checked = all.checked;
    });
  }
});
