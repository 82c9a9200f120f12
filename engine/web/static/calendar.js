// The calendar: drag an event onto another day to move it (same time of day).
// The server checks rights, validation and the version; a refusal is shown and
// the event stays where it was. Without this file, events link to their records.
(function () {
  "use strict";
  var calendar = document.getElementById("calendar");
  if (!calendar) { return; }
  var message = document.getElementById("calendar-message");
  var dragged = null;

  function show(text) {
    message.textContent = text || "";
    message.hidden = !text;
  }

  calendar.addEventListener("dragstart", function (event) {
    dragged = event.target.closest(".calendar-event");
    if (dragged) { event.dataTransfer.setData("text/plain", dragged.dataset.move); }
  });
  calendar.addEventListener("dragover", function (event) {
    if (dragged && event.target.closest(".calendar-day")) { event.preventDefault(); }
  });
  calendar.addEventListener("drop", function (event) {
    var day = event.target.closest(".calendar-day");
    if (!dragged || !day) { return; }
    event.preventDefault();
    var item = dragged;
    dragged = null;
    var start = day.dataset.date + (item.dataset.allDay === "true" ? "" : "T" + item.dataset.time);
    var body = new URLSearchParams({start: start, version: item.dataset.version});
    fetch(item.dataset.move, {
      method: "POST", credentials: "same-origin", body: body,
      headers: {"X-CSRF-Token": calendar.dataset.csrf, "Accept": "application/json"}
    }).then(function (response) {
      return response.json().then(function (data) { return {ok: response.ok, data: data}; });
    }).then(function (answer) {
      if (!answer.ok) {
        var errors = answer.data.errors ? Object.values(answer.data.errors).flat() : [];
        show([answer.data.message].concat(errors).join(" "));
        return;
      }
      show("");
      item.dataset.version = answer.data.version;
      day.querySelector("ul").appendChild(item);
    }).catch(function () { show("The event could not be moved; try again."); });
  });
}());
