// Send the CSRF token with every htmx request; show 4xx answers in the message area.
document.addEventListener("DOMContentLoaded", function () {
  var meta = document.querySelector('meta[name="csrf-token"]');
  document.body.addEventListener("htmx:configRequest", function (event) {
    if (meta && meta.content) { event.detail.headers["X-CSRFToken"] = meta.content; }
  });
  if (window.htmx) {
    htmx.config.responseHandling = [
      {code: "204", swap: false},
      {code: "[23]..", swap: true},
      {code: "(401|403|404|429|5..)", swap: true, error: true, target: "#messages", swapOverride: "innerHTML"},
      {code: "(409|422)", swap: true},
      {code: "...", swap: false}
    ];
  }
  // A select marked data-autosubmit sends its form when changed (no inline handlers: CSP).
  document.body.addEventListener("change", function (event) {
    var target = event.target;
    if (target && target.matches && target.matches("select[data-autosubmit]") && target.form) {
      target.form.submit();
    }
  });
  var switcher = document.querySelector("[data-switch-tenant]");
  if (switcher) {
    switcher.addEventListener("change", function () {
      if (switcher.value) { window.location.assign("/t/" + encodeURIComponent(switcher.value) + "/"); }
    });
  }
});
