// Poll the API for studies that are not finished yet and update their rows in place.
(function () {
  const table = document.querySelector("table[data-poll-url]");
  if (!table) return;
  const url = table.dataset.pollUrl;
  const FINAL = new Set(["done", "failed"]);
  // Screen readers hear each change of status (the region is polite: it waits its turn).
  const live = document.getElementById("live-status");
  function announce(text) {
    if (live) live.textContent = text;
  }

  function pending() {
    return Array.from(table.querySelectorAll("tr[data-study-id]"))
      .filter((row) => !FINAL.has(row.dataset.status));
  }

  async function poll() {
    const rows = pending();
    if (rows.length === 0) return;
    const ids = rows.map((row) => row.dataset.studyId).join(",");
    try {
      const response = await fetch(`${url}?ids=${ids}`, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const body = await response.json();
        for (const study of body.results) {
          const row = table.querySelector(`tr[data-study-id="${study.id}"]`);
          if (!row) continue;
          const changed = row.dataset.status !== study.status;
          row.dataset.status = study.status;
          const badge = row.querySelector(".status .badge");
          badge.textContent = study.status;
          badge.className = `badge ${study.status}`;
          if (study.failure_reason) {
            let reason = row.querySelector(".status .reason");
            if (!reason) {
              reason = document.createElement("small");
              reason.className = "reason";
              row.querySelector(".status").appendChild(reason);
            }
            reason.textContent = study.failure_reason;
          }
          // Not assessable: the reasons, never the model's label.
          const assessment = study.assessment;
          const cell = row.querySelector(".label");
          if (assessment && assessment.state === "not_assessable") {
            cell.textContent = `not assessable: ${assessment.reasons.join("; ")}`;
            cell.classList.add("not-assessable");
          } else if (assessment && assessment.state === "not_diagnostic") {
            cell.textContent = "not diagnostic";
            cell.classList.add("not-assessable");
          } else if (study.prediction) {
            cell.textContent = study.prediction.label;
          }
          if (changed) {
            const what = study.failure_reason ? `failed: ${study.failure_reason}` : study.status;
            const detail = assessment && assessment.state === "not_assessable"
              ? ` (not assessable: ${assessment.reasons.join("; ")})` : "";
            announce(`Study ${study.id}: ${what}${detail}`);
            // The upload page's own line for this file says it too.
            const file = document.querySelector(`#upload-files li[data-study-id="${study.id}"] .file-result`);
            if (file) file.textContent = `study #${study.id}: ${what}${detail || (study.prediction ? `, ${study.prediction.label}` : "")}`;
          }
        }
      }
    } finally {
      if (pending().length > 0) setTimeout(poll, 2000);
    }
  }
  setTimeout(poll, 1000);
  // A study uploaded from this page without a reload (upload.js): a row of its own, polled.
  let polling = false;
  document.addEventListener("studies:added", (event) => {
    const id = event.detail.id;
    const body = table.querySelector("tbody");
    const empty = body.querySelector("td[colspan]");
    if (empty) empty.parentElement.remove();
    const row = document.createElement("tr");
    row.dataset.studyId = id;
    row.dataset.status = "queued";
    const link = document.createElement("a");
    link.href = `/studies/${id}/`;
    link.textContent = `#${id}`;
    const cells = Array.from({ length: table.querySelectorAll("thead th").length }, () => document.createElement("td"));
    cells[0].append(link);
    const status = cells[cells.length - 2];
    status.className = "status";
    const badge = document.createElement("span");
    badge.className = "badge queued";
    badge.textContent = "queued";
    status.append(badge);
    cells[cells.length - 1].className = "label";
    row.append(...cells);
    body.prepend(row);
    if (!polling) { polling = true; setTimeout(() => { polling = false; poll(); }, 1000); }
  });
})();
