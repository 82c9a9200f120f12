// A background import's page: follow the run's progress, then show its report.
// Without this file the page's "Refresh" link does the same by hand.
(function () {
  "use strict";
  var holder = document.getElementById("import-progress");
  if (!holder || !window.fetch) { return; }
  var bar = document.getElementById("import-bar");
  var status = document.getElementById("import-status");
  var url = holder.getAttribute("data-status-url");
  var wait = 1000;

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (answer) {
        if (!answer.ok) { throw new Error(String(answer.status)); }
        return answer.json();
      })
      .then(function (run) {
        if (run.finished) { window.location.reload(); return; }
        bar.value = run.percent;
        bar.textContent = run.percent + "%";
        status.textContent = run.text;
        wait = 1000;
        window.setTimeout(poll, wait);
      })
      .catch(function () {
        wait = Math.min(wait * 2, 30000);  // a server restarting: try again, less often
        window.setTimeout(poll, wait);
      });
  }

  window.setTimeout(poll, wait);
}());
