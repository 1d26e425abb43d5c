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

  // After a form comes back with errors, put the keyboard on the first one. Not after one field's inline
  // validation: the user has moved on to the next field, and taking the focus back would trap them.
  function focusFirstError(root) {
    var bad = root.querySelector("[aria-invalid='true']");
    if (bad && root.matches && (root.matches("form, .form-shell") || root.querySelector("form"))) bad.focus();
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

// Relation lookups (widgets/relation.html, relation-many.html): the server lists matches as buttons; choosing one
// puts its id into the field (or a chip) and fires "change", which validates the field and re-checks visibility.
(function () {
  "use strict";

  function parts(box) {
    return {
      value: box.querySelector("[data-lookup-value]"), q: box.querySelector("[data-lookup-q]"),
      list: box.querySelector(".lookup-options"), title: box.querySelector("[data-lookup-title]"),
      clear: box.querySelector("[data-lookup-clear]"), chips: box.querySelector("[data-lookup-chips]")
    };
  }

  function close(p) {
    if (p.list) p.list.innerHTML = "";
    if (p.q) p.q.setAttribute("aria-expanded", "false");
  }

  function changed(p) {
    if (p.value) p.value.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function choose(option) {
    var box = option.closest("[data-lookup]"), p = parts(box);
    var id = option.getAttribute("data-id"), title = option.getAttribute("data-title");
    if (p.chips) {
      var taken = Array.prototype.some.call(p.chips.querySelectorAll("input"), function (i) { return i.value === id; });
      if (!taken) {
        var chip = box.querySelector("template[data-lookup-chip]").content.firstElementChild.cloneNode(true);
        chip.querySelector("input").value = id;
        chip.querySelector("[data-chip-title]").textContent = title;
        chip.querySelector("[data-lookup-remove]").setAttribute("aria-label", "Remove " + title);
        p.chips.appendChild(chip);
      }
    } else {
      p.value.value = id;
      p.title.textContent = title;
      if (p.clear) p.clear.hidden = false;
    }
    if (p.q) { p.q.value = ""; p.q.focus(); }
    close(p);
    changed(p);
  }

  document.addEventListener("click", function (ev) {
    var t = ev.target.closest && ev.target.closest("[data-lookup-option], [data-lookup-clear], [data-lookup-remove]");
    if (!t) return;
    var p = parts(t.closest("[data-lookup]"));
    if (t.hasAttribute("data-lookup-option")) {
      choose(t);
      return;
    }
    if (t.hasAttribute("data-lookup-clear")) {
      p.value.value = "";
      p.title.textContent = "";
      t.hidden = true;
    } else {
      t.closest("li").remove();
    }
    if (p.q) p.q.focus();
    changed(p);
  });

  // Keyboard: Down from the search box into the options, Up/Down between them, Escape closes the list,
  // Enter in the search box picks the only match.
  document.addEventListener("keydown", function (ev) {
    var box = ev.target.closest && ev.target.closest("[data-lookup]");
    if (!box) return;
    var p = parts(box), options = Array.prototype.slice.call(box.querySelectorAll("[data-lookup-option]"));
    var i = options.indexOf(ev.target);
    if (ev.key === "ArrowDown" && options.length) {
      ev.preventDefault();
      options[Math.min(i + 1, options.length - 1)].focus();
    } else if (ev.key === "ArrowUp" && i >= 0) {
      ev.preventDefault();
      (i === 0 ? p.q : options[i - 1]).focus();
    } else if (ev.key === "Escape" && p.list && p.list.children.length) {
      ev.preventDefault();
      close(p);
      if (p.q) p.q.focus();
    } else if (ev.key === "Enter" && ev.target === p.q && options.length === 1) {
      ev.preventDefault();
      choose(options[0]);
    }
  });

  // The listbox is expanded while it shows options.
  document.addEventListener("htmx:afterSwap", function (ev) {
    var list = ev.detail.target;
    if (!list.classList || !list.classList.contains("lookup-options")) return;
    var q = parts(list.closest("[data-lookup]")).q;
    if (q) q.setAttribute("aria-expanded", list.querySelector("[data-lookup-option]") ? "true" : "false");
  });
})();

// Select options carry their colour in data-color; apply it through the CSSOM (no inline style attributes).
(function () {
  "use strict";
  function colourBadges(root) {
    root.querySelectorAll(".badge[data-color]").forEach(function (el) {
      var c = el.getAttribute("data-color");
      if (/^#[0-9a-fA-F]{6}$/.test(c)) el.style.setProperty("--badge-color", c);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { colourBadges(document); });
  document.addEventListener("htmx:afterSettle", function (ev) { colourBadges(ev.detail.target); });
})();

// The board (templates/board.html): drag a card to another column. The card moves at once; the server fires the
// transition that leads there and answers the columns as they now are (the card back in its own column, and the
// reason in the alert region, when the move was refused).
(function () {
  "use strict";
  var dragged = null, home = null, before = null;

  function column(el) { return el && el.closest ? el.closest(".board-column") : null; }

  function unmark() {
    document.querySelectorAll(".board-column.drop-target").forEach(function (c) { c.classList.remove("drop-target"); });
  }

  function putBack(message) {
    if (!dragged) return;
    dragged.classList.remove("pending");
    if (home) home.insertBefore(dragged, before && before.parentNode === home ? before : null);
    var alert = document.getElementById("board-message");
    if (alert && message) alert.textContent = message;
    dragged = null;
  }

  document.addEventListener("dragstart", function (ev) {
    var card = ev.target.closest && ev.target.closest(".board-card[draggable='true']");
    if (!card) return;
    dragged = card;
    home = card.parentNode;
    before = card.nextElementSibling;
    ev.dataTransfer.effectAllowed = "move";
    ev.dataTransfer.setData("text/plain", card.getAttribute("data-id"));
    card.classList.add("dragging");
  });

  document.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("dragging");
    unmark();
  });

  document.addEventListener("dragover", function (ev) {
    var col = column(ev.target);
    if (!col || !dragged) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = "move";
    if (!col.classList.contains("drop-target")) {
      unmark();
      col.classList.add("drop-target");
    }
  });

  document.addEventListener("drop", function (ev) {
    var col = column(ev.target), board = document.getElementById("board");
    if (!col || !dragged || !board) return;
    ev.preventDefault();
    unmark();
    var to = col.getAttribute("data-state"), from = dragged.getAttribute("data-state");
    dragged.classList.remove("dragging");
    if (to === from) { dragged = null; return; }
    col.querySelector(".board-cards").prepend(dragged);
    dragged.classList.add("pending");
    var query = board.getAttribute("data-query");
    var url = board.getAttribute("data-base") + "/" + encodeURIComponent(dragged.getAttribute("data-id")) + "/move" +
      (query ? "?" + query : "");
    htmx.ajax("POST", url, { source: dragged, target: "#board", swap: "innerHTML", values: { to: to, seen_state: from } })
      .then(function () { dragged = null; });
  });

  // Refused by HTTP (403, a lost connection): the server did not answer with columns, so put the card back here.
  document.addEventListener("htmx:responseError", function (ev) {
    if (dragged && ev.detail.elt === dragged) putBack("The card could not be moved (" + ev.detail.xhr.status + ").");
  });
  document.addEventListener("htmx:sendError", function (ev) {
    if (dragged && ev.detail.elt === dragged) putBack("The card could not be moved: the server did not answer.");
  });
})();

// The app designer (templates/designer/). A key made from a label is filled in while the label is typed, until
// people type the key themselves. In a field panel, a change to an input marked data-refresh (a format, a
// condition's field or operator, a new option) asks the server to render the panel again; other changes leave
// the panel's inputs alone, so a click that follows typing is never lost.
(function () {
  "use strict";
  document.addEventListener("input", function (ev) {
    var t = ev.target;
    if (t.matches && t.matches("[data-key-input]")) t.setAttribute("data-touched", "");
  });
  document.addEventListener("htmx:beforeRequest", function (ev) {
    var target = ev.detail.target;
    if (target && target.matches && target.matches("[data-key-input][data-touched]")) ev.preventDefault();
  });
  // Clicking a kind in the palette puts the cursor in the label: click, type, Enter. Only for pointer clicks
  // (detail > 0): arrow keys move through the kinds as usual.
  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (!ev.detail || !t.closest || !t.closest("#add-field-form .palette-kind")) return;
    setTimeout(function () {
      var label = document.getElementById("new-field-label");
      if (label) label.focus();
    }, 0);
  });
  document.addEventListener("change", function (ev) {
    var t = ev.target, panel = t.closest && t.closest(".field-panel");
    if (!panel) return;
    var flag = panel.querySelector("[data-refresh-flag]");
    if (flag) flag.value = t.matches("[data-refresh]") ? "1" : "";
  }, true);
})();
