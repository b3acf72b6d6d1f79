// A table wider than its card scrolls inside it: such a region must be reachable by keyboard
// (focusable, named), so that it can be scrolled with the arrow keys.
document.querySelectorAll(".table-scroll").forEach((region) => {
  if (region.scrollWidth > region.clientWidth + 1) {
    const table = region.querySelector("table");
    region.tabIndex = 0;
    region.setAttribute("role", "region");
    region.setAttribute("aria-label", (table && (table.getAttribute("aria-label") || table.caption?.textContent || table.id)) || "table");
  }
});
