// The page's behaviour (no inline handlers: CSP). htmx gets the CSRF token; 4xx answers show
// in the message area or, for a form in a dialog, in the dialog; dialogs, dropdowns and
// toasts are Bootstrap's (from the vendored Tabler bundle); table headers sort, long tables
// page; selects marked data-autosubmit send their form; the tenant switcher navigates.
(function () {
  "use strict";
  var ui = window.tabler || window.bootstrap || {};

  var SIGNING_CHANNEL = "opencdmo-signing";
  function modalOf(element) { return element && element.closest ? element.closest(".modal") : null; }

  function openModal(modal) {
    if (ui.Modal) { ui.Modal.getOrCreateInstance(modal).show(); }
  }

  // Close at once (dialogs have no fade): the backdrop goes before htmx replaces the DOM.
  function closeModal(modal) {
    var instance = ui.Modal && ui.Modal.getInstance(modal);
    if (instance) { instance.hide(); }
  }

  function focusFirst(container) {
    var target = container.querySelector("[aria-invalid=true]") ||
      container.querySelector("[data-modal-errors] .alert") ||
      container.querySelector("[data-autofocus]") ||
      container.querySelector("input:not([type=hidden]), select, textarea, button.btn-primary");
    if (target) {
      if (target.classList.contains("alert")) { target.setAttribute("tabindex", "-1"); }
      target.focus();
    }
  }

  function showToast(element) {
    if (element.dataset.toastShown) { return; }
    element.dataset.toastShown = "1";
    var area = document.getElementById("toasts");
    if (area && element.parentNode !== area) { area.appendChild(element); }
    if (!ui.Toast) { return; }
    var danger = element.dataset.kind === "danger" || element.dataset.kind === "warning";
    element.classList.remove("show");
    var toast = ui.Toast.getOrCreateInstance(element, {animation: false, autohide: !danger, delay: 8000});
    element.addEventListener("hidden.bs.toast", function () { element.remove(); });
    toast.show();
  }

  function toastFrom(message, kind) {
    var element = document.createElement("div");
    element.className = "toast toast-kind-" + kind;
    element.dataset.toast = "";
    element.dataset.kind = kind;
    var body = document.createElement("div");
    body.className = "toast-body d-flex align-items-start gap-2";
    var text = document.createElement("span");
    text.className = "flex-fill";
    text.textContent = message;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "btn-close";
    close.setAttribute("data-bs-dismiss", "toast");
    close.setAttribute("aria-label", "Close");
    body.appendChild(text);
    body.appendChild(close);
    element.appendChild(body);
    return element;
  }

  // Sortable headers: th[data-sort] gets a button; rows sort by data-sort-value or text.
  function sortValue(row, index, kind) {
    var cell = row.children[index];
    var raw = cell ? (cell.dataset.sortValue || cell.textContent.trim()) : "";
    if (kind === "number") {
      var number = parseFloat(raw.replace(/[^0-9eE.+-]/g, ""));
      return isNaN(number) ? -Infinity : number;
    }
    return raw.toLowerCase();
  }

  function sortBy(table, th, index) {
    var body = table.tBodies[0];
    if (!body) { return; }
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th[aria-sort]").forEach(function (other) { other.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var kind = th.dataset.sort;
    var rows = Array.prototype.filter.call(body.rows, function (row) { return !row.hasAttribute("data-empty"); });
    rows.sort(function (a, b) {
      var x = sortValue(a, index, kind), y = sortValue(b, index, kind);
      var order = x < y ? -1 : (x > y ? 1 : 0);
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    if (table.dataset.pageSize) { showPage(table, 1); }
  }

  function enhanceSorting(table) {
    table.querySelectorAll("thead th[data-sort]").forEach(function (th) {
      if (th.querySelector("button.sort")) { return; }
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      while (th.firstChild) { button.appendChild(th.firstChild); }
      th.appendChild(button);
      var index = Array.prototype.indexOf.call(th.parentNode.children, th);
      button.addEventListener("click", function () { sortBy(table, th, index); });
    });
  }

  // Client-side pages for a table[data-page-size]: a pager after the table.
  function showPage(table, number) {
    var size = parseInt(table.dataset.pageSize, 10);
    var rows = Array.prototype.filter.call(table.tBodies[0].rows, function (row) { return !row.hasAttribute("data-empty"); });
    var pages = Math.max(1, Math.ceil(rows.length / size));
    number = Math.min(Math.max(1, number), pages);
    rows.forEach(function (row, i) { row.hidden = Math.floor(i / size) + 1 !== number; });
    var holder = table.closest(".table-responsive") || table;
    var nav = holder.nextElementSibling && holder.nextElementSibling.matches("nav.table-pager") ? holder.nextElementSibling : null;
    if (pages <= 1) { if (nav) { nav.remove(); } return; }
    if (!nav) {
      nav = document.createElement("nav");
      nav.className = "table-pager pager";
      nav.setAttribute("aria-label", "Pages of the table");
      holder.parentNode.insertBefore(nav, holder.nextSibling);
    }
    nav.textContent = "";
    var list = document.createElement("ul");
    list.className = "pagination mb-0";
    for (var n = 1; n <= pages; n++) {
      var item = document.createElement("li");
      item.className = "page-item" + (n === number ? " active" : "");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "page-link";
      button.textContent = String(n);
      button.setAttribute("aria-label", "Page " + n);
      if (n === number) { button.setAttribute("aria-current", "page"); }
      button.addEventListener("click", showPage.bind(null, table, n));
      item.appendChild(button);
      list.appendChild(item);
    }
    nav.appendChild(list);
  }

  function enhance(root) {
    root.querySelectorAll("table").forEach(function (table) {
      enhanceSorting(table);
      if (table.dataset.pageSize && table.tBodies[0]) { showPage(table, 1); }
    });
    root.querySelectorAll("[data-toast]").forEach(showToast);
    root.querySelectorAll("[data-print]").forEach(function (button) {
      if (!button.dataset.printReady) {
        button.dataset.printReady = "1";
        button.addEventListener("click", function () { window.print(); });
      }
    });
    root.querySelectorAll(".modal[data-open]").forEach(function (modal) {
      modal.removeAttribute("data-open");
      openModal(modal);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var meta = document.querySelector('meta[name="csrf-token"]');
    document.body.addEventListener("htmx:configRequest", function (event) {
      if (meta && meta.content) { event.detail.headers["X-CSRFToken"] = meta.content; }
    });
    if (window.htmx) {
      // Settling copies these attributes between old and new elements with setAttribute; a
      // style attribute set that way is refused by the CSP (and no element carries one).
      htmx.config.attributesToSettle = ["class", "width", "height"];
      htmx.config.responseHandling = [
        {code: "204", swap: false},
        {code: "[23]..", swap: true},
        {code: "(401|403|404|429|5..)", swap: true, error: true, target: "#messages", swapOverride: "innerHTML"},
        {code: "(409|422)", swap: true},
        {code: "...", swap: false}
      ];
    }

    // A form in a dialog: a refusal stays in the dialog, a success closes it first.
    document.body.addEventListener("htmx:beforeSwap", function (event) {
      var form = event.detail.requestConfig && event.detail.requestConfig.elt;
      if (!form || !form.matches || !form.matches("form[data-modal-form]")) { return; }
      var status = event.detail.xhr.status;
      var content = form.closest(".modal-content");
      if (status >= 400 && status < 500 && content) {
        event.detail.shouldSwap = true;
        event.detail.isError = false;
        if (event.detail.serverResponse.indexOf('id="' + content.id + '"') >= 0) {
          event.detail.target = content;
          event.detail.selectOverride = "#" + content.id;
          event.detail.swapOverride = "outerHTML";
        } else {
          event.detail.target = content.querySelector("[data-modal-errors]");
          event.detail.selectOverride = "unset";
          event.detail.swapOverride = "innerHTML";
        }
      } else if (status < 400) {
        closeModal(modalOf(form));
      }
    });
    // After a refusal replaced a dialog's content: focus the field (or message) to correct.
    document.body.addEventListener("htmx:afterSwap", function () {
      var open = document.querySelector(".modal.show");
      if (open) { focusFirst(open); }
    });
    enhance(document);
    if (window.htmx) { htmx.onLoad(function (element) { if (element.querySelectorAll) { enhance(element); } }); }

    document.addEventListener("shown.bs.modal", function (event) { focusFirst(event.target); });
    document.body.addEventListener("opencdmo:toast", function (event) {
      (event.detail.toasts || []).forEach(function (t) { showToast(toastFrom(t.message, t.kind)); });
    });

    // A form marked data-once is sent once: a second tap while the first is on its way (a
    // tired operator, a slow network) is ignored, and its buttons show it is being sent.
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (!form || !form.matches || !form.matches("form[data-once]")) { return; }
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "true";
      form.setAttribute("aria-busy", "true");
      window.setTimeout(function () {
        form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      }, 0);
    });
    // Back to a page from the browser's cache: its forms may be sent again.
    window.addEventListener("pageshow", function (event) {
      if (!event.persisted) { return; }
      document.querySelectorAll("form[data-once]").forEach(function (form) {
        delete form.dataset.sent;
        form.removeAttribute("aria-busy");
        form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
      });
    });

    // Signing under single sign-on: Re-authenticate opens the provider in a window of its
    // own; the page it ends on (the one-time code) hands the code to this page on a
    // same-origin channel, and the signature's code field fills itself.
    var pendingCode = null, reauthWindow = null, REAUTH_WINDOW = "opencdmo-reauth-window";
    document.addEventListener("click", function (event) {
      var link = event.target && event.target.closest ? event.target.closest("a[data-reauth-for]") : null;
      if (!link) { return; }
      pendingCode = link.getAttribute("data-reauth-for");
      // The window opened gets a copy of this tab's session storage: the mark tells the code
      // page, once back from the provider (which may cut the window's opener), to close.
      sessionStorage.setItem(REAUTH_WINDOW, "1");
      reauthWindow = window.open(link.href, "opencdmo-reauth", "popup,width=560,height=720");
      sessionStorage.removeItem(REAUTH_WINDOW);
      if (reauthWindow) { event.preventDefault(); }
    });
    function codeReceived(code) {
      // Only the page that asked takes the code (another tab of the same site hears it too).
      var field = pendingCode && document.getElementById(pendingCode);
      if (!field || typeof code !== "string") { return; }
      pendingCode = null;
      if (reauthWindow && !reauthWindow.closed) { reauthWindow.close(); }
      field.value = code;
      field.dispatchEvent(new Event("input", { bubbles: true }));
      var group = field.closest(".input-group");
      var note = group && group.parentElement.querySelector("[data-signing-code-received]");
      if (note) { note.hidden = false; }
      var submit = field.form && field.form.querySelector(".modal-footer [type=submit], button[type=submit]:not([form])");
      window.focus();
      (submit || field).focus();
    }
    if ("BroadcastChannel" in window) {
      new BroadcastChannel(SIGNING_CHANNEL).onmessage = function (event) {
        if (event.data && event.data.type === "signing-code") { codeReceived(event.data.code); }
      };
    }
    var given = document.querySelector("[data-signing-code]");
    if (given && "BroadcastChannel" in window) {
      var channel = new BroadcastChannel(SIGNING_CHANNEL);
      channel.postMessage({ type: "signing-code", code: given.textContent.trim() });
      channel.close();
      if (sessionStorage.getItem(REAUTH_WINDOW)) {
        sessionStorage.removeItem(REAUTH_WINDOW);
        var told = document.querySelector("[data-signing-code-sent]");
        if (told) { told.hidden = false; }
        window.setTimeout(function () { window.close(); }, 1500);
      }
    }

    // A select marked data-autosubmit sends its form when changed.
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
})();
