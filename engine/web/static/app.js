// VisionCRM's small progressive enhancements. Every form works without this file.
(function () {
  "use strict";

  // Confirmation before a form with data-confirm posts (transitions, delete, archive).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var text = form.getAttribute && form.getAttribute("data-confirm");
    if (text && !window.confirm(text)) { event.preventDefault(); }
  });

  // Reference pickers: type to search, the select's options come from the lookup endpoint.
  function setupPicker(input) {
    var select = document.getElementById(input.getAttribute("data-target"));
    if (!select) { return; }
    input.hidden = false;
    var timer = null;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var url = input.getAttribute("data-lookup") + "?q=" + encodeURIComponent(input.value);
        fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
          .then(function (response) { return response.ok ? response.json() : { results: [] }; })
          .then(function (data) {
            var keep = Array.prototype.filter.call(select.options, function (o) {
              return o.selected || o.value === "";
            });
            select.innerHTML = "";
            keep.forEach(function (o) { select.appendChild(o); });
            data.results.forEach(function (item) {
              if (keep.some(function (o) { return o.value === String(item.id); })) { return; }
              var option = document.createElement("option");
              option.value = String(item.id);
              option.textContent = item.title;
              select.appendChild(option);
            });
          });
      }, 200);
    });
  }

  // Lines editors: add and remove rows, products and totals computed as you type.
  function number(text) {
    var value = parseFloat(String(text || "").replace(/,/g, ""));
    return isNaN(value) ? 0 : value;
  }

  function setupLines(box) {
    var body = box.querySelector("tbody");
    var template = box.querySelector("template.line-template");
    var add = box.querySelector(".add-line");
    var counter = body.querySelectorAll("tr.line").length;

    function recompute() {
      var totals = {};
      body.querySelectorAll("tr.line").forEach(function (row) {
        row.querySelectorAll("output[data-product]").forEach(function (out) {
          var parts = out.getAttribute("data-product").split(",");
          if (parts.length !== 2) { return; }
          var a = row.querySelector("[name$='-" + parts[0] + "']");
          var b = row.querySelector("[name$='-" + parts[1] + "']");
          if (!a || !b) { return; }
          var value = number(a.value) * number(b.value);
          var scale = parseInt(out.getAttribute("data-scale") || "2", 10);
          out.textContent = (a.value || b.value) ? value.toFixed(scale) : "";
          var column = out.getAttribute("data-column");
          totals[column] = (totals[column] || 0) + value;
        });
      });
      box.querySelectorAll("output.lines-total").forEach(function (out) {
        var value = totals[out.getAttribute("data-column")] || 0;
        out.textContent = value.toLocaleString(document.documentElement.lang,
          { minimumFractionDigits: 2, maximumFractionDigits: 2 });
      });
    }

    function wire(row) {
      var remove = row.querySelector(".remove-line");
      if (remove) {
        remove.hidden = false;
        remove.addEventListener("click", function () { row.remove(); recompute(); });
      }
    }

    body.querySelectorAll("tr.line").forEach(wire);
    if (template && add) {
      add.hidden = false;
      add.addEventListener("click", function () {
        var html = template.innerHTML.replace(/__index__/g, String(counter));
        counter += 1;
        var holder = document.createElement("tbody");
        holder.innerHTML = html;
        var row = holder.querySelector("tr");
        body.appendChild(row);
        wire(row);
        var first = row.querySelector("input, select");
        if (first) { first.focus(); }
      });
    }
    box.addEventListener("input", recompute);
    recompute();
  }

  // A new or edit form starts in its first field (or the first one with an error).
  function focusFirstField() {
    var form = document.querySelector("form.record-form");
    if (!form) { return; }
    var fields = form.querySelectorAll(
      ".has-error input, .has-error select, .has-error textarea, " +
      "input:not([type=hidden]), select, textarea");
    for (var i = 0; i < fields.length; i += 1) {
      var field = fields[i];
      if (!field.disabled && field.getClientRects().length) { field.focus(); return; }
    }
  }

  // Lists: the filters sit behind one "Filters" control on a phone, open on a desktop.
  function openFiltersWhenWide() {
    var wide = window.matchMedia("(min-width: 900px)").matches;
    document.querySelectorAll("details[data-open-wide]").forEach(function (box) {
      if (wide) { box.open = true; }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input.picker-search").forEach(setupPicker);
    document.querySelectorAll("[data-lines]").forEach(setupLines);
    openFiltersWhenWide();
    focusFirstField();
  });
})();
