// Heatmap overlay: show/hide, choose the layer (fused or one member), set the opacity.
(function () {
  const overlay = document.getElementById("overlay");
  if (!overlay) return;
  const toggle = document.getElementById("overlay-toggle");
  const opacity = document.getElementById("overlay-opacity");
  const layer = document.getElementById("overlay-layer");
  toggle.addEventListener("change", () => { overlay.hidden = !toggle.checked; });
  opacity.addEventListener("input", () => { overlay.style.opacity = opacity.value / 100; });
  layer.addEventListener("change", () => { overlay.src = layer.value; });
})();
