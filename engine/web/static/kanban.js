// The kanban board: drag a card onto another column, or pick a stage with the card's
// "Move" button (the phone's way), to run the transition. A move whose transition asks
// for fields (a lost reason) opens a sheet first, with nothing chosen for the user; the
// server checks everything again and its field messages show under each field.
// Without this file each card's "Move" form does the same through page loads.
(function () {
  "use strict";
  var board = document.getElementById("board");
  if (!board) { return; }
  var message = document.getElementById("board-message");
  var dialog = document.getElementById("move-dialog");
  var sheet = document.getElementById("move-form");
  var holder = document.getElementById("move-fields");
  var sheetError = document.getElementById("move-error");
  var transitions = JSON.parse(board.getAttribute("data-transitions") || "{}");
  var definitions = JSON.parse(board.getAttribute("data-fields") || "{}");
  var dragged = null;
  var pending = null;  // {card, stage} while the sheet is open

  function show(texts) {
    message.textContent = texts.join(" ");
    message.hidden = texts.length === 0;
  }

  function asks(card, stage) {
    var from = card.closest(".board-column").getAttribute("data-stage");
    return ((transitions[from] || {})[stage] || []).map(function (key) {
      return definitions[key];
    }).filter(Boolean);
  }

  function field(item, errors) {
    var box = document.createElement("div");
    box.className = "field" + (errors.length ? " has-error" : "");
    var label = document.createElement("label");
    label.htmlFor = "move-" + item.key;
    label.textContent = item.label + " ";
    var mark = document.createElement("span");
    mark.className = "req";
    mark.textContent = "*";
    label.appendChild(mark);
    var input;
    if (item.choices && item.choices.length) {
      input = document.createElement("select");
      if (item.multiple) { input.multiple = true; }
      var empty = document.createElement("option");
      empty.value = "";
      empty.textContent = dialog.getAttribute("data-choose");
      if (!item.multiple) { input.appendChild(empty); }
      item.choices.forEach(function (pair) {
        var option = document.createElement("option");
        option.value = pair[0];
        option.textContent = pair[1];
        input.appendChild(option);
      });
    } else if (item.type === "text") {
      input = document.createElement("textarea");
      input.rows = 3;
    } else {
      input = document.createElement("input");
      var types = {decimal: "number", integer: "number", date: "date",
                   datetime: "datetime-local", email: "email", phone: "tel"};
      input.type = types[item.type] || "text";
      if (input.type === "number") { input.step = "any"; }
    }
    input.id = "move-" + item.key;
    input.name = item.key;
    input.required = true;
    box.appendChild(label);
    box.appendChild(input);
    if (errors.length) {
      var list = document.createElement("ul");
      list.className = "field-errors";
      list.id = "move-" + item.key + "-errors";
      errors.forEach(function (text) {
        var li = document.createElement("li");
        li.textContent = text;
        list.appendChild(li);
      });
      box.appendChild(list);
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", list.id);
    }
    return box;
  }

  function openSheet(card, stage, items, errors, reasons, keep) {
    var kept = {};
    if (keep) {
      holder.querySelectorAll("[name]").forEach(function (input) { kept[input.name] = input; });
    }
    holder.innerHTML = "";
    items.forEach(function (item) {
      var box = field(item, (errors || {})[item.key] || []);
      var input = box.querySelector("[name]");
      if (kept[item.key] && !input.multiple) { input.value = kept[item.key].value; }
      holder.appendChild(box);
    });
    sheetError.textContent = (reasons || []).join(" ");
    sheetError.hidden = !(reasons && reasons.length);
    var title = card.querySelector(".card-title").textContent;
    var column = board.querySelector(".board-column[data-stage='" + stage + "'] h2");
    document.getElementById("move-title").textContent = dialog.getAttribute("data-needs")
      .replace("{title}", title).replace("{stage}", column ? column.textContent : stage);
    pending = {card: card, stage: stage, items: items};
    if (!dialog.open) { dialog.showModal(); }
    var first = holder.querySelector(".has-error [name]") || holder.querySelector("[name]");
    if (first) { first.focus(); }
  }

  function values() {
    var found = {};
    holder.querySelectorAll("[name]").forEach(function (input) {
      if (input.multiple) {
        found[input.name] = Array.prototype.filter.call(input.options, function (o) {
          return o.selected;
        }).map(function (o) { return o.value; });
      } else {
        found[input.name] = input.value;
      }
    });
    return found;
  }

  function move(card, stage, given) {
    var data = new FormData();
    data.append("csrf_token", board.getAttribute("data-csrf"));
    data.append("record_id", card.getAttribute("data-id"));
    data.append("version", card.getAttribute("data-version"));
    data.append("pipeline", board.getAttribute("data-pipeline"));
    data.append("to", stage);
    Object.keys(given || {}).forEach(function (key) {
      [].concat(given[key]).forEach(function (value) { data.append(key, value); });
      if (Array.isArray(given[key])) { data.append(key + "__present", "1"); }
    });
    fetch(board.getAttribute("data-move"), {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-Requested-With": "fetch", "X-CSRF-Token": board.getAttribute("data-csrf"),
                 Accept: "application/json" }
    }).then(function (response) { return response.json(); }).then(function (result) {
      if (result.ok) { window.location.reload(); return; }
      if (result.ask && result.ask.length) {
        var items = (pending && pending.card === card && pending.stage === stage)
          ? pending.items : result.ask;
        result.ask.forEach(function (item) {
          if (!items.some(function (known) { return known.key === item.key; })) {
            items = items.concat([item]);
          }
        });
        openSheet(card, stage, items, result.errors, result.reasons, dialog.open);
        return;
      }
      var texts = (result.reasons || []).slice();
      Object.keys(result.errors || {}).forEach(function (key) {
        texts = texts.concat(result.errors[key]);
      });
      if (dialog.open) { dialog.close(); }
      show(texts);
    }).catch(function () { show([message.getAttribute("data-failed") || "Error"]); });
  }

  function start(card, stage) {
    show([]);
    var items = asks(card, stage);
    if (items.length) {
      openSheet(card, stage, items, {}, [], false);
    } else {
      pending = null;
      move(card, stage, null);
    }
  }

  sheet.addEventListener("submit", function (event) {
    event.preventDefault();
    if (pending) { move(pending.card, pending.stage, values()); }
  });
  document.getElementById("move-cancel").addEventListener("click", function () {
    dialog.close();
  });
  dialog.addEventListener("close", function () { pending = null; });

  // The card's own form (a tap on a phone): the same sheet as a drag.
  board.addEventListener("submit", function (event) {
    var form = event.target.closest && event.target.closest("form.card-move");
    if (!form) { return; }
    event.preventDefault();
    start(form.closest(".board-card"), form.querySelector("select[name=to]").value);
  });

  board.addEventListener("dragstart", function (event) {
    var card = event.target.closest && event.target.closest(".board-card");
    if (!card) { return; }
    dragged = card;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.getAttribute("data-id"));
  });
  board.addEventListener("dragover", function (event) {
    if (dragged && event.target.closest(".board-column")) { event.preventDefault(); }
  });
  board.addEventListener("drop", function (event) {
    var column = event.target.closest(".board-column");
    if (!dragged || !column) { return; }
    event.preventDefault();
    var card = dragged;
    dragged = null;
    if (card.closest(".board-column") === column) { return; }
    start(card, column.getAttribute("data-stage"));
  });
})();
