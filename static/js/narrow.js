// What a narrow screen (a phone) needs from script; without it every page still works.
//
// 1. The top bar's menu folds behind its Menu button and opens on a tap (never on hover).
// 2. A table of more than three columns turns into stacked rows below 640 px
//    (portwatch.css, ".table.stacks"): each cell gets its column's heading as a
//    label here, so the templates need nothing. Tables that HTMX swaps in (the
//    overview's live panel) are labelled when they arrive.

function foldMenu() {
  const button = document.querySelector(".menu-toggle");
  const nav = document.getElementById("site-nav");
  if (!button || !nav) return;
  document.documentElement.classList.add("nav-folds");
  button.hidden = false;
  button.addEventListener("click", () => {
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    nav.classList.toggle("open", open);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && nav.classList.contains("open")) {
      nav.classList.remove("open");
      button.setAttribute("aria-expanded", "false");
      button.focus();
    }
  });
}

function labelTables(root) {
  for (const table of root.querySelectorAll("table.table:not(.matrix):not(.stacks)")) {
    const headings = Array.from(table.querySelectorAll(":scope > thead > tr > th"), (th) => th.textContent.trim());
    if (headings.length <= 3 || table.querySelector("[colspan], [rowspan]")) continue;
    for (const row of table.querySelectorAll(":scope > tbody > tr")) {
      Array.from(row.children).forEach((cell, index) => {
        if (headings[index]) cell.dataset.label = headings[index];
      });
    }
    table.classList.add("stacks");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  foldMenu();
  labelTables(document);
  document.body.addEventListener("htmx:afterSwap", (event) => labelTables(event.target));
});
