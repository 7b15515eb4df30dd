// Drag and drop on the designer canvas: on drop, post the new arrangement (every form on the
// page does the same with buttons, for keyboard and no-script use).
(function () {
  function layoutOf(root) {
    var layout = {};
    root.querySelectorAll("[data-steps]").forEach(function (list) {
      layout[list.dataset.steps] = Array.prototype.map.call(
        list.querySelectorAll(":scope > [data-step]"), function (li) { return li.dataset.step; });
    });
    return layout;
  }
  function init(root) {
    var designer = root.querySelector ? (root.id === "designer" ? root : root.querySelector("#designer")) : null;
    if (!designer || !window.Sortable) { return; }
    var palette = designer.querySelector("[data-palette]");
    if (palette) {
      // The whole card is the handle; its controls (the procedure select, the Add button)
      // keep their clicks and keys, so a drag starts anywhere else on the card.
      Sortable.create(palette, {group: {name: "steps", pull: "clone", put: false}, sort: false,
                                animation: 120, draggable: ".palette-item",
                                filter: "select, button, input, option", preventOnFilter: false});
    }
    designer.querySelectorAll("[data-steps]").forEach(function (list) {
      Sortable.create(list, {
        group: "steps", animation: 120,
        onAdd: function (evt) {
          if (!evt.item.dataset.libraryItem) { return; }
          // A unit operation dropped from the palette: add it at that position.
          var form = designer.querySelector("[data-drop-form]");
          form.querySelector("input[name=library_item_id]").value = evt.item.dataset.libraryItem;
          form.querySelector("input[name=procedure]").value = evt.to.dataset.steps;
          form.querySelector("input[name=position]").value = evt.newIndex;
          evt.item.remove();
          htmx.trigger(form, "drop-step");
        },
        onEnd: function (evt) {
          if (evt.item.dataset.libraryItem) { return; }
          var form = designer.querySelector("[data-arrange-form]");
          form.querySelector("input[name=layout]").value = JSON.stringify(layoutOf(designer));
          htmx.trigger(form, "arrange");
        }
      });
    });
    var filter = designer.querySelector("[data-palette-filter]");
    var category = designer.querySelector("[data-palette-category]");
    function applyFilter() {
      var q = filter ? filter.value.toLowerCase() : "";
      var c = category ? category.value : "";
      designer.querySelectorAll("[data-palette] > li").forEach(function (li) {
        li.hidden = Boolean((q && li.textContent.toLowerCase().indexOf(q) < 0) ||
                            (c && li.dataset.category !== c));
      });
    }
    // Keep the filter across the designer's htmx swaps (every edit re-renders it).
    var saved = window.sessionStorage ? sessionStorage.getItem("designer-palette") : null;
    if (saved) {
      try {
        saved = JSON.parse(saved);
        if (filter) { filter.value = saved.q || ""; }
        if (category) { category.value = saved.c || ""; }
      } catch (e) { saved = null; }
    }
    function remember() {
      if (window.sessionStorage) {
        sessionStorage.setItem("designer-palette", JSON.stringify(
          {q: filter ? filter.value : "", c: category ? category.value : ""}));
      }
      applyFilter();
    }
    if (filter) { filter.addEventListener("input", remember); }
    if (category) { category.addEventListener("change", remember); }
    applyFilter();
  }
  // Every edit re-renders the designer: keep the window's and the canvas's scroll positions
  // (and the panel's) across the swap, so the page does not jump after an edit.
  var kept = null;
  function scrollers() {
    return Array.prototype.slice.call(document.querySelectorAll("#designer .canvas, #designer .panel, #designer .palette-list"));
  }
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "designer") { return; }
    kept = {x: window.scrollX, y: window.scrollY,
            inner: scrollers().map(function (el) { return [el.scrollLeft, el.scrollTop]; })};
  });
  function restore() {
    if (!kept) { return; }
    var inner = kept.inner;
    scrollers().forEach(function (el, i) {
      if (inner[i]) { el.scrollLeft = inner[i][0]; el.scrollTop = inner[i][1]; }
    });
    window.scrollTo(kept.x, kept.y);
  }
  document.addEventListener("htmx:afterSwap", restore);
  document.addEventListener("htmx:afterSettle", function () { restore(); kept = null; });
  document.addEventListener("DOMContentLoaded", function () {
    init(document);
    if (window.htmx) { htmx.onLoad(function (el) { init(el); }); }
  });
})();
