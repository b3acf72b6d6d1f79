// The upload page, enhanced: files can be dropped on the form; each file is sent on its own
// (to this page, asking for JSON) with a progress bar, and its result (the study it became, or why it was
// refused) shows next to it, then its status as the worker answers. Without JavaScript the
// form posts as before.
(function () {
  const form = document.querySelector("form.upload");
  if (!form) return;
  const input = form.querySelector("input[type=file]");
  const zone = document.getElementById("dropzone");
  const list = document.getElementById("upload-files");
  const token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  let chosen = [];

  function show(files) {
    chosen = Array.from(files);
    list.replaceChildren(...chosen.map((file) => {
      const item = document.createElement("li");
      item.dataset.name = file.name;
      const name = document.createElement("span");
      name.className = "file-name";
      name.textContent = `${file.name} (${Math.ceil(file.size / 1024)} KB)`;
      const bar = document.createElement("progress");
      bar.max = 100; bar.value = 0;
      bar.setAttribute("aria-label", `Upload of ${file.name}`);
      const result = document.createElement("span");
      result.className = "file-result";
      item.append(name, " ", bar, " ", result);
      return item;
    }));
  }

  input.addEventListener("change", () => show(input.files));
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => {
    zone.classList.remove("dragging");
  }));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (!event.dataTransfer || !event.dataTransfer.files.length) return;
    try { input.files = event.dataTransfer.files; } catch (e) { /* read-only in old browsers */ }
    show(event.dataTransfer.files);
  });

  // The page's own message list, as the server would have filled it.
  function message(kind, text, link) {
    let box = document.querySelector("main ul.messages");
    if (!box) {
      box = document.createElement("ul");
      box.className = "messages";
      document.querySelector("main").prepend(box);
    }
    const line = document.createElement("li");
    line.className = kind;
    line.textContent = text;
    if (link) {
      const open = document.createElement("a");
      open.href = link;
      open.textContent = "Open it";
      line.append(" ", open, ".");
    }
    box.append(line);
  }

  function send(file, item) {
    return new Promise((resolve) => {
      const data = new FormData();
      data.append("images", file);
      for (const name of ["patient_id", "accession", "site", "view"]) {
        data.append(name, form.elements[name].value);
      }
      const request = new XMLHttpRequest();
      const bar = item.querySelector("progress");
      const result = item.querySelector(".file-result");
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) bar.value = Math.round((100 * event.loaded) / event.total);
      });
      request.addEventListener("load", () => {
        let body = {};
        try { body = JSON.parse(request.responseText); } catch (e) { /* not JSON */ }
        bar.value = 100;
        const outcome = (body.files || [])[0];
        if (outcome && outcome.study) {
          item.dataset.studyId = outcome.study;
          item.classList.add("ok");
          result.textContent = `queued as study #${outcome.study}`;
          if (outcome.warning) message("warning", `${file.name}: ${outcome.warning}`);
          document.dispatchEvent(new CustomEvent("studies:added", { detail: { id: outcome.study } }));
        } else {
          const why = (outcome && outcome.error) || body.detail || `refused (HTTP ${request.status})`;
          item.classList.add("refused");
          result.textContent = why;
          message("error", why, outcome && outcome.existing ? `/studies/${outcome.existing}/` : "");
        }
        resolve();
      });
      request.addEventListener("error", () => {
        result.textContent = "the upload failed: the connection was lost";
        item.classList.add("refused");
        resolve();
      });
      request.open("POST", form.action || window.location.pathname);
      request.setRequestHeader("X-CSRFToken", token);
      request.setRequestHeader("Accept", "application/json");
      request.send(data);
    });
  }

  form.addEventListener("submit", async (event) => {
    if (!chosen.length) return;  // the browser's own check asks for a file
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    const items = Array.from(list.children);
    for (let i = 0; i < chosen.length; i++) await send(chosen[i], items[i]);
    button.disabled = false;
    const ok = list.querySelectorAll("li.ok").length;
    if (ok) message("success", `${ok} image(s) queued for analysis.`);
    const live = document.getElementById("live-status");
    if (live) live.textContent = `${ok} of ${chosen.length} file(s) queued for analysis`;
  });
})();
