// Small progressive enhancements; no inline scripts anywhere (a strict Content-Security-Policy stays possible).
(function () {
  "use strict";

  // Dates and times arrive as ISO 8601 in <time datetime="...">; show them in the reader's locale and time zone.
  function localiseTimes(root) {
    root.querySelectorAll("time[datetime]:not([data-localised])").forEach(function (el) {
      var iso = el.getAttribute("datetime");
      var isDate = /^\d{4}-\d{2}-\d{2}$/.test(iso);
      var d = new Date(isDate ? iso + "T00:00:00" : iso);
      if (isNaN(d)) return;
      var opts = isDate ? { dateStyle: "medium" } : { dateStyle: "medium", timeStyle: "short" };
      el.textContent = new Intl.DateTimeFormat(undefined, opts).format(d);
      el.title = iso;
      el.setAttribute("data-localised", "");
    });
  }

  // After a form comes back with errors, put the keyboard on the first one.
  function focusFirstError(root) {
    var bad = root.querySelector("[aria-invalid='true']");
    if (bad && root.matches && root.matches("form, form *, .form-shell, .form-shell *")) bad.focus();
  }

  // Datetime inputs are local time in the browser; the server stores UTC. Convert on the way in and out.
  function localiseDatetimeInputs(root) {
    root.querySelectorAll("input[type='datetime-local'][data-utc]:not([data-localised])").forEach(function (el) {
      var iso = el.getAttribute("data-utc");
      if (iso) {
        var d = new Date(iso);
        if (!isNaN(d)) {
          var pad = function (n) { return String(n).padStart(2, "0"); };
          el.value = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" +
            pad(d.getHours()) + ":" + pad(d.getMinutes());
        }
      }
      el.setAttribute("data-localised", "");
    });
    var tz = root.querySelectorAll("input[name='_tz_offset']");
    tz.forEach(function (el) { el.value = String(new Date().getTimezoneOffset()); });
  }

  function enhance(root) {
    localiseTimes(root);
    localiseDatetimeInputs(root);
  }

  document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  document.addEventListener("htmx:afterSwap", function (ev) {
    enhance(ev.detail.target);
    focusFirstError(ev.detail.target);
  });
  document.addEventListener("htmx:afterSettle", function (ev) { enhance(ev.detail.target); });

  // Select-all checkbox of list views.
  document.addEventListener("change", function (ev) {
    var t = ev.target;
    if (t.matches && t.matches("input[data-select-all]")) {
      document.querySelectorAll("input[name='ids']").forEach(function (box) { box.checked = t.checked; });
    }
  });
})();
