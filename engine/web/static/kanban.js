// The kanban board: drag a card onto another column to run the transition.
// Without this file each card's "Move" form does the same through a page load.
(function () {
  "use strict";
  var board = document.getElementById("board");
  if (!board) { return; }
  var message = document.getElementById("board-message");
  var dialog = document.getElementById("move-dialog");
  var dragged = null;

  function show(texts) {
    message.textContent = texts.join(" ");
    message.hidden = texts.length === 0;
  }

  function field(item) {
    var label = document.createElement("label");
    label.className = "field";
    label.textContent = item.label + " ";
    var input;
    if (item.choices && item.choices.length) {
      input = document.createElement("select");
      item.choices.forEach(function (pair) {
        var option = document.createElement("option");
        option.value = pair[0];
        option.textContent = pair[1];
        input.appendChild(option);
      });
    } else {
      input = document.createElement("input");
      input.type = item.type === "decimal" || item.type === "integer" ? "number" : "text";
      if (input.type === "number") { input.step = "any"; }
    }
    input.name = item.key;
    label.appendChild(input);
    return label;
  }

  function ask(items, then) {
    var holder = document.getElementById("move-fields");
    holder.innerHTML = "";
    items.forEach(function (item) { holder.appendChild(field(item)); });
    dialog.onclose = function () {
      if (dialog.returnValue !== "ok") { return; }
      var values = {};
      holder.querySelectorAll("input, select").forEach(function (input) {
        values[input.name] = input.value;
      });
      then(values);
    };
    dialog.showModal();
  }

  function move(card, stage, values) {
    var data = new FormData();
    data.append("csrf_token", board.getAttribute("data-csrf"));
    data.append("record_id", card.getAttribute("data-id"));
    data.append("version", card.getAttribute("data-version"));
    data.append("pipeline", board.getAttribute("data-pipeline"));
    data.append("to", stage);
    Object.keys(values || {}).forEach(function (key) { data.append(key, values[key]); });
    fetch(board.getAttribute("data-move"), {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-Requested-With": "fetch", "X-CSRF-Token": board.getAttribute("data-csrf"),
                 Accept: "application/json" }
    }).then(function (response) { return response.json(); }).then(function (result) {
      if (result.ok) { window.location.reload(); return; }
      if (result.ask && result.ask.length && !values) {
        ask(result.ask, function (given) { move(card, stage, given); });
        return;
      }
      var texts = result.reasons || [];
      Object.keys(result.errors || {}).forEach(function (key) {
        texts = texts.concat(result.errors[key]);
      });
      show(texts);
    }).catch(function () { show(["Error"]); });
  }

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
    show([]);
    move(card, column.getAttribute("data-stage"), null);
  });
})();
