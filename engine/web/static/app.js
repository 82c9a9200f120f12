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

  // Reference pickers in forms: a combobox (WAI-ARIA 1.2) over the plain select, searching
  // every record the user may read as they type. The select keeps the value that is posted.
  var pickerCount = 0;
  function setupCombobox(box) {
    var select = box.querySelector("select");
    if (!select || select.disabled || box.getAttribute("data-ready")) { return; }
    box.setAttribute("data-ready", "1");
    var multiple = select.multiple;
    var find = box.querySelector(".picker-find");
    if (find) { find.remove(); }
    pickerCount += 1;
    var listId = "picker-list-" + pickerCount;
    var input = document.createElement("input");
    input.type = "text";
    input.id = select.id + "-q";
    input.className = "picker-input";
    input.autocomplete = "off";
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", listId);
    input.placeholder = box.getAttribute("data-placeholder") || "";
    var list = document.createElement("ul");
    list.id = listId;
    list.className = "picker-list";
    list.setAttribute("role", "listbox");
    list.hidden = true;
    var status = document.createElement("span");
    status.className = "visually-hidden";
    status.setAttribute("role", "status");
    var label = select.id ? document.querySelector("label[for='" + select.id + "']") : null;
    var cell = box.closest("td[data-label]");
    if (multiple) {
      input.setAttribute("aria-label", (label ? label.textContent.trim() + " · " : "") +
                         input.placeholder);
    } else if (label) {
      label.htmlFor = input.id;
      select.hidden = true;
      select.tabIndex = -1;
    } else {
      input.setAttribute("aria-label", cell ? cell.getAttribute("data-label") : input.placeholder);
      select.hidden = true;
      select.tabIndex = -1;
    }
    if (select.autofocus) { input.autofocus = true; }
    list.setAttribute("aria-label", input.getAttribute("aria-label") ||
                      (label ? label.textContent.trim() : ""));
    box.insertBefore(input, select);
    box.appendChild(list);
    box.appendChild(status);

    var items = [];
    var active = -1;
    var timer = null;
    var asked = 0;

    function current() {
      var option = select.options[select.selectedIndex];
      return !multiple && option && option.value ? option.textContent : "";
    }
    input.value = current();

    function place() {
      var rect = input.getBoundingClientRect();
      var view = window.visualViewport;
      var height = view ? view.height : window.innerHeight;
      var width = document.documentElement.clientWidth;
      var below = height - rect.bottom - 8;
      var above = rect.top - 8;
      var up = below < 180 && above > below;
      var room = Math.max(120, Math.min(320, up ? above : below));
      var wide = Math.min(Math.max(rect.width, 260), width - 16);
      list.style.left = Math.max(8, Math.min(rect.left, width - wide - 8)) + "px";
      list.style.width = wide + "px";
      list.style.maxHeight = room + "px";
      list.style.top = up ? "" : rect.bottom + 2 + "px";
      list.style.bottom = up ? (height - rect.top + 2) + "px" : "";
    }

    function open() {
      if (!list.hidden) { return; }
      // Near the bottom of a phone's screen: bring the input up so the choices fit below it.
      var rect = input.getBoundingClientRect();
      var height = window.visualViewport ? window.visualViewport.height : window.innerHeight;
      if (height - rect.bottom < 240 && rect.top > 120) {
        window.scrollBy(0, rect.top - 96);
      }
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      place();
    }

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }

    function highlight(index) {
      var options = list.querySelectorAll("[role=option]");
      if (!options.length) { return; }
      active = Math.max(0, Math.min(index, options.length - 1));
      options.forEach(function (node, i) {
        node.setAttribute("aria-selected", i === active ? "true" : "false");
      });
      input.setAttribute("aria-activedescendant", options[active].id);
      options[active].scrollIntoView({ block: "nearest" });
    }

    function note(text, kind) {
      var li = document.createElement("li");
      li.className = "picker-note " + kind;
      li.setAttribute("role", "presentation");
      li.textContent = text;
      list.appendChild(li);
    }

    function show(data) {
      list.setAttribute("aria-busy", "false");
      items = data.results || [];
      list.innerHTML = "";
      active = -1;
      input.removeAttribute("aria-activedescendant");
      items.forEach(function (item, i) {
        var li = document.createElement("li");
        li.id = listId + "-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        li.setAttribute("data-index", String(i));
        var title = document.createElement("span");
        title.className = "picker-title";
        title.textContent = item.title;
        li.appendChild(title);
        if (item.detail) {
          var detail = document.createElement("span");
          detail.className = "picker-detail";
          detail.textContent = item.detail;
          li.appendChild(detail);
        }
        list.appendChild(li);
      });
      if (!items.length) { note(box.getAttribute("data-empty") || "", "is-empty"); }
      if (data.has_more) { note(box.getAttribute("data-more") || "", "is-more"); }
      status.textContent = (box.getAttribute("data-found") || "{count}")
        .replace("{count}", items.length + (data.has_more ? "+" : ""));
      open();
      place();
    }

    function search() {
      asked += 1;
      var mine = asked;
      var url = box.getAttribute("data-lookup") + "?q=" + encodeURIComponent(input.value.trim());
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : { results: [] }; })
        .then(function (data) { if (mine === asked) { show(data); } })
        .catch(function () { if (mine === asked) { show({ results: [] }); } });
    }

    function later() {
      // What is listed no longer answers the words typed: Enter waits for the new answer.
      list.setAttribute("aria-busy", "true");
      items = [];
      active = -1;
      input.removeAttribute("aria-activedescendant");
      clearTimeout(timer);
      timer = setTimeout(search, 250);
    }

    function choose(index) {
      var item = items[index];
      if (!item) { return; }
      var value = String(item.id);
      var option = Array.prototype.find.call(select.options, function (o) { return o.value === value; });
      if (!option) {
        option = document.createElement("option");
        option.value = value;
        option.textContent = item.detail ? item.title + " · " + item.detail : item.title;
        select.appendChild(option);
      }
      option.selected = true;
      input.value = multiple ? "" : option.textContent;
      close();
      select.dispatchEvent(new Event("change", { bubbles: true }));
      select.dispatchEvent(new Event("input", { bubbles: true }));
    }

    input.addEventListener("input", function () { later(); });
    input.addEventListener("click", function () { if (list.hidden) { search(); } });
    input.addEventListener("keydown", function (event) {
      var count = list.querySelectorAll("[role=option]").length;
      if (event.key === "ArrowDown") {
        event.preventDefault();
        if (list.hidden) { search(); } else if (items.length) { highlight(active + 1); }
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        if (!list.hidden && items.length) { highlight(active <= 0 ? count - 1 : active - 1); }
      } else if (event.key === "Enter") {
        if (!list.hidden || list.getAttribute("aria-busy") === "true") {
          event.preventDefault();
          if (active >= 0) { choose(active); } else if (count === 1) { choose(0); }
        }
      } else if (event.key === "Escape") {
        if (!list.hidden) {
          event.preventDefault();
          close();
        } else if (!multiple) {
          input.value = current();
        }
      } else if (event.key === "Tab") {
        close();
      }
    });
    input.addEventListener("blur", function () {
      setTimeout(function () {
        if (document.activeElement === input) { return; }
        close();
        if (!multiple && input.value.trim() === "" && select.value !== "") {
          select.value = "";
          select.dispatchEvent(new Event("change", { bubbles: true }));
        }
        if (!multiple) { input.value = current(); }
      }, 150);
    });
    // Keep the focus in the input while a choice is pressed (mouse or touch), then choose it.
    list.addEventListener("mousedown", function (event) { event.preventDefault(); });
    list.addEventListener("click", function (event) {
      var li = event.target.closest("[role=option]");
      if (li) { choose(parseInt(li.getAttribute("data-index"), 10)); }
    });
    window.addEventListener("resize", function () { if (!list.hidden) { place(); } });
    document.addEventListener("scroll", function (event) {
      if (!list.hidden && !list.contains(event.target)) { place(); }
    }, true);
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
        row.querySelectorAll("[data-picker]").forEach(setupCombobox);
        var first = row.querySelector("input:not([type=hidden]), select:not([hidden])");
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
    document.querySelectorAll("[data-picker]").forEach(function (box) {
      if (!box.closest("template")) { setupCombobox(box); }
    });
  });
})();
