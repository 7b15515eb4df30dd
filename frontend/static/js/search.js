// The search box's keyboard: the down arrow moves from the box into its suggestions, the
// arrows move between them, Escape goes back to the box and closes them.
(function () {
  function links(box) {
    return Array.prototype.slice.call(box.querySelectorAll("[data-suggestion]"));
  }
  function setUp(box) {
    if (box.dataset.searchReady) { return; }
    box.dataset.searchReady = "1";
    var input = box.querySelector("input[type=search]");
    var list = box.querySelector(".suggestions");
    box.addEventListener("keydown", function (event) {
      var found = links(box);
      var at = found.indexOf(document.activeElement);
      if (event.key === "ArrowDown" && found.length) {
        event.preventDefault();
        found[Math.min(at + 1, found.length - 1)].focus();
      } else if (event.key === "ArrowUp" && at >= 0) {
        event.preventDefault();
        if (at === 0) { input.focus(); } else { found[at - 1].focus(); }
      } else if (event.key === "Escape") {
        list.innerHTML = "";
        input.focus();
      }
    });
  }
  function setUpAll() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-search-box]"), setUp);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUpAll);
  } else {
    setUpAll();
  }
})();
