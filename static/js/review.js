// Review page: the X-ray on a canvas with window/level, zoom and pan; the heatmap overlay
// (layer, opacity, on/off); the lung contour (on/off); and keyboard-first reading (digits,
// Enter, J/K, C, Esc).
(function () {
  const canvas = document.getElementById("xray-canvas");
  const overlay = document.getElementById("overlay");
  const stack = document.getElementById("stack");
  const viewport = document.getElementById("viewport");

  // Window/level on the displayed grey levels: a lookup table applied to the pixels.
  const width = document.getElementById("window-width");
  const level = document.getElementById("window-level");
  let original = null;
  function applyWindow() {
    if (!original) return;
    // Grey levels low .. low + w - 1 map onto 0 .. 255; the default (256, 128) is the identity.
    const w = Number(width.value), c = Number(level.value);
    const low = c - w / 2;
    const lut = new Uint8ClampedArray(256);
    for (let v = 0; v < 256; v++) lut[v] = ((v - low) * 255) / (w - 1);
    const out = new ImageData(original.width, original.height);
    const src = original.data, dst = out.data;
    for (let i = 0; i < src.length; i += 4) {
      dst[i] = lut[src[i]]; dst[i + 1] = lut[src[i + 1]]; dst[i + 2] = lut[src[i + 2]];
      dst[i + 3] = 255;
    }
    canvas.getContext("2d").putImageData(out, 0, 0);
    canvas.dataset.window = `${w}/${c}`;
  }
  if (canvas) {
    const image = new Image();
    image.onload = () => {
      canvas.width = image.naturalWidth;
      canvas.height = image.naturalHeight;
      const context = canvas.getContext("2d", { willReadFrequently: true });
      context.drawImage(image, 0, 0);
      original = context.getImageData(0, 0, canvas.width, canvas.height);
      applyWindow();
      canvas.dataset.ready = "1";
    };
    image.src = canvas.dataset.src;
    width.addEventListener("input", applyWindow);
    level.addEventListener("input", applyWindow);
  }

  // Zoom (wheel around the pointer, + and − around the centre) and pan (drag, arrow keys):
  // one transform for image and overlay.
  let scale = 1, x = 0, y = 0, drag = null;
  const live = document.getElementById("live-status");
  function announce(text) { if (live) live.textContent = text; }
  function transform() {
    stack.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
    stack.dataset.scale = scale.toFixed(2);
    stack.dataset.pan = `${Math.round(x)},${Math.round(y)}`;
  }
  // Zoom by ``factor`` keeping the point (px, py) of the viewport where it is.
  function zoomAt(px, py, factor) {
    const next = Math.min(10, Math.max(1, scale * factor));
    x = px - ((px - x) * next) / scale;
    y = py - ((py - y) * next) / scale;
    scale = next;
    if (scale === 1) { x = 0; y = 0; }
    transform();
  }
  function zoomBy(factor) {
    if (!viewport) return;
    zoomAt(viewport.clientWidth / 2, viewport.clientHeight / 2, factor);
    announce(`Zoom ${Math.round(scale * 100)}%`);
  }
  function panBy(dx, dy) { x += dx; y += dy; transform(); }
  function resetView() {
    scale = 1; x = 0; y = 0; transform();
    width.value = width.dataset.default; level.value = level.dataset.default; applyWindow();
    announce("View reset");
  }
  // + − 0 and the arrows: always while the image view has focus; page-wide when single-key
  // shortcuts are on (the user's setting).
  const shortcutsOn = !viewport || viewport.dataset.shortcuts !== "off";
  function viewKey(event) {
    const step = 40;
    const keys = {
      "+": () => zoomBy(1.25), "=": () => zoomBy(1.25), "-": () => zoomBy(1 / 1.25),
      "0": resetView, ArrowLeft: () => panBy(step, 0), ArrowRight: () => panBy(-step, 0),
      ArrowUp: () => panBy(0, step), ArrowDown: () => panBy(0, -step),
    };
    const action = keys[event.key];
    if (!action) return false;
    event.preventDefault();
    action();
    return true;
  }
  if (viewport) {
    viewport.addEventListener("wheel", (event) => {
      event.preventDefault();
      const rect = viewport.getBoundingClientRect();
      zoomAt(event.clientX - rect.left, event.clientY - rect.top, event.deltaY < 0 ? 1.15 : 1 / 1.15);
    }, { passive: false });
    viewport.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      drag = { startX: event.clientX - x, startY: event.clientY - y };
      viewport.setPointerCapture(event.pointerId);
    });
    viewport.addEventListener("pointermove", (event) => {
      if (!drag) return;
      x = event.clientX - drag.startX;
      y = event.clientY - drag.startY;
      transform();
    });
    viewport.addEventListener("pointerup", () => { drag = null; });
    viewport.addEventListener("pointercancel", () => { drag = null; });
    transform();  // the starting state, for the page and its tests to read
    document.getElementById("view-reset").addEventListener("click", resetView);
    document.getElementById("zoom-in").addEventListener("click", () => zoomBy(1.25));
    document.getElementById("zoom-out").addEventListener("click", () => zoomBy(1 / 1.25));
    viewport.addEventListener("keydown", (event) => {
      if (!(event.ctrlKey || event.metaKey || event.altKey) && viewKey(event)) {
        event.stopPropagation();
      }
    });
  }

  if (overlay) {
    const toggle = document.getElementById("overlay-toggle");
    const opacity = document.getElementById("overlay-opacity");
    const layer = document.getElementById("overlay-layer");
    overlay.style.opacity = opacity.value / 100;
    toggle.addEventListener("change", () => { overlay.hidden = !toggle.checked; });
    opacity.addEventListener("input", () => { overlay.style.opacity = opacity.value / 100; });
    layer.addEventListener("change", () => { overlay.src = layer.value; });
  }

  // The lung contour: the mask PNG (white inside, the heatmaps' size) read on an offscreen
  // canvas; every pixel whose 4-neighbours are not all on its own side of the boundary (the
  // image's edge counts as outside) is painted, so the line is two mask pixels wide. The
  // canvas sits in the stack like the heatmap, so it follows zoom and pan.
  const contour = document.getElementById("lung-contour");
  function drawContour(mask) {
    const w = mask.naturalWidth, h = mask.naturalHeight;
    const scratch = document.createElement("canvas");
    scratch.width = w; scratch.height = h;
    const read = scratch.getContext("2d", { willReadFrequently: true });
    read.drawImage(mask, 0, 0);
    const px = read.getImageData(0, 0, w, h).data;
    const inside = (i, j) => i >= 0 && j >= 0 && i < w && j < h && px[(j * w + i) * 4] > 127;
    contour.width = w; contour.height = h;
    const out = new ImageData(w, h);
    let painted = 0;
    for (let j = 0; j < h; j++) {
      for (let i = 0; i < w; i++) {
        const here = inside(i, j);
        if (here === inside(i - 1, j) && here === inside(i + 1, j)
            && here === inside(i, j - 1) && here === inside(i, j + 1)) continue;
        const k = (j * w + i) * 4;
        out.data[k] = 255; out.data[k + 1] = 61; out.data[k + 2] = 245; out.data[k + 3] = 255;
        painted++;
      }
    }
    contour.getContext("2d").putImageData(out, 0, 0);
    contour.dataset.painted = String(painted);
  }
  if (contour) {
    const toggle = document.getElementById("contour-toggle");
    let requested = false;
    toggle.addEventListener("change", () => {
      contour.hidden = !toggle.checked;
      if (!toggle.checked || requested) return;
      requested = true; // the mask is fetched once, on the first look
      const mask = new Image();
      mask.onload = () => drawContour(mask);
      mask.src = contour.dataset.src;
    });
  }

  // Keyboard: never while typing in a field (the comment box keeps its keys).
  const form = document.getElementById("review-form");
  if (form) {
    form.addEventListener("submit", () => {
      form.querySelector("button[type=submit]").disabled = true; // one reading per press
    });
    // A not-diagnostic reading carries no label: the classes are then not needed (and the
    // server sets aside one that is ticked).
    const labels = form.querySelectorAll("input[name=label]");
    const notDiagnostic = form.querySelector("input[name=assessability][value=not_diagnostic]");
    const syncLabels = () => {
      for (const input of labels) {
        input.required = !notDiagnostic.checked;
      }
    };
    form.querySelectorAll("input[name=assessability]").forEach((input) => {
      input.addEventListener("change", syncLabels);
    });
    // Choosing a class is choosing to read the image: leave "not diagnostic" (for "readable";
    // on a study the gate refused, "assessable after all" stays the reader's own choice).
    labels.forEach((input) => input.addEventListener("change", () => {
      if (!notDiagnostic.checked) return;
      notDiagnostic.checked = false;
      const readable = form.querySelector("input[name=assessability][value='']");
      if (readable) readable.checked = true;
      syncLabels();
    }));
  }
  // A study still queued or running: its status is polled and announced, with a link to
  // reload once the prediction is there.
  const badge = document.getElementById("study-status");
  async function pollStatus() {
    try {
      const response = await fetch(`${badge.dataset.pollUrl}?ids=${badge.dataset.studyId}`,
        { headers: { Accept: "application/json" } });
      const study = response.ok ? (await response.json()).results[0] : null;
      if (study && study.status !== badge.textContent) {
        badge.textContent = study.status;
        badge.className = `badge ${study.status}`;
        const final = study.status === "done" || study.status === "failed";
        announce(`Study ${study.id}: ${study.status}${final ? ". Reload the page to see the result." : ""}`);
        if (final) {
          const reload = document.createElement("a");
          reload.href = window.location.href;
          reload.id = "reload";
          reload.textContent = " reload to see the result";
          badge.after(reload);
          return;
        }
      }
    } catch (e) { /* the next poll tries again */ }
    setTimeout(pollStatus, 2000);
  }
  if (badge && (badge.textContent === "queued" || badge.textContent === "running")) {
    setTimeout(pollStatus, 1000);
  }

  const help = document.getElementById("shortcut-help");
  function toggleHelp(show) {
    if (!help) return;
    help.hidden = !show;
    if (show) document.getElementById("shortcut-help-close").focus();
  }
  if (help) {
    document.getElementById("shortcut-help-close").addEventListener("click", () => toggleHelp(false));
  }
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (help && !help.hidden && (event.key === "Escape" || event.key === "?")) {
      event.preventDefault();
      toggleHelp(false);
      return;
    }
    if (!shortcutsOn) return;
    const typing = event.target.closest("textarea, input[type=text], input[type=number], select");
    if (typing) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.key === "?") { event.preventDefault(); toggleHelp(true); return; }
    const arrow = event.key.startsWith("Arrow");
    if (event.repeat && !arrow) return;
    // Arrows keep their own meaning in a control (radio buttons, sliders).
    if (!(arrow && event.target.closest("input, button")) && viewKey(event)) return;
    const go = (id) => { const link = document.getElementById(id); if (link) link.click(); };
    if (event.key === "j" || event.key === "J") { go("next-case"); return; }
    if (event.key === "k" || event.key === "K") { go("previous-case"); return; }
    if (!form) return;
    if (/^[1-9]$/.test(event.key)) {
      const choice = form.querySelectorAll("input[name=label]")[Number(event.key) - 1];
      if (choice) { choice.checked = true; event.preventDefault(); announce(`Label ${choice.value}`); }
    } else if (event.key === "Enter") {
      // Enter on a link or button keeps its own meaning; elsewhere it saves the reading.
      if (event.target.closest("a, button") && !form.contains(event.target)) return;
      event.preventDefault();
      if (!form.querySelector("button[type=submit]").disabled) form.requestSubmit();
    } else if (event.key === "c" || event.key === "C") {
      event.preventDefault();
      form.querySelector("textarea[name=comment]").focus();
    }
  });
})();
