// Form and page enhancements driven by the view metadata; every page works without them.
(function () {
  "use strict";

  function csrfOf(form) {
    var input = form.querySelector("input[name=csrf_token]");
    return input ? input.value : "";
  }

  // Sections shown as tabs (view 'tabs: true'): a button per section, one shown at a time.
  function setupTabs(box) {
    var sections = Array.prototype.filter.call(box.children, function (el) {
      return el.hasAttribute("data-tab");
    });
    if (sections.length < 2) { return; }
    var bar = document.createElement("div");
    bar.className = "tab-bar";
    bar.setAttribute("role", "tablist");
    function show(index) {
      sections.forEach(function (section, i) {
        section.classList.toggle("tab-hidden", i !== index);
        bar.children[i].setAttribute("aria-selected", i === index ? "true" : "false");
      });
    }
    sections.forEach(function (section, i) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "tab";
      button.setAttribute("role", "tab");
      button.textContent = section.getAttribute("data-tab-label") || section.getAttribute("data-tab");
      button.addEventListener("click", function () { show(i); });
      bar.appendChild(button);
    });
    box.insertBefore(bar, box.firstChild);
    // open the first tab holding an error, else the first
    var withError = sections.findIndex(function (s) { return s.querySelector(".has-error"); });
    show(withError >= 0 ? withError : 0);
  }

  // visible_if / required_if applied live: the server evaluates the same expressions.
  function setupRules(form) {
    var url = form.getAttribute("data-rules-url");
    var timer = null;
    var pending = null;
    function apply(answer) {
      Object.keys(answer.visible || {}).forEach(function (key) {
        var box = form.querySelector("[data-field='" + key + "']");
        if (box) { box.hidden = !answer.visible[key]; }
      });
      Object.keys(answer.required || {}).forEach(function (key) {
        var star = form.querySelector("[data-field='" + key + "'] .req");
        if (star) { star.hidden = !answer.required[key]; }
      });
      form.setAttribute("data-rules-state", "ready");
    }
    function check() {
      if (pending) { pending.abort(); }
      pending = new AbortController();
      form.setAttribute("data-rules-state", "busy");
      fetch(url, {
        method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: { "X-CSRF-Token": csrfOf(form), "X-Requested-With": "fetch",
                   Accept: "application/json" },
        signal: pending.signal
      }).then(function (response) { return response.ok ? response.json() : null; })
        .then(function (answer) { if (answer) { apply(answer); } })
        .catch(function () { /* aborted or offline: the save checks anyway */ });
    }
    form.addEventListener("change", function () { clearTimeout(timer); timer = setTimeout(check, 120); });
    form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(check, 300); });
    form.setAttribute("data-rules-state", "ready");
  }

  // Quick create: 'q' opens the header panel (outside of inputs), Escape closes it.
  function setupQuick(details) {
    document.addEventListener("keydown", function (event) {
      var tag = (event.target.tagName || "").toLowerCase();
      var typing = tag === "input" || tag === "textarea" || tag === "select" || event.target.isContentEditable;
      if (event.key === "q" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
        event.preventDefault();
        details.open = true;
        var first = details.querySelector(".quick-form input:not([type=hidden]):not([hidden]), .quick-form select");
        if (first) { first.focus(); }
      } else if (event.key === "Escape" && details.open) {
        details.open = false;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-tabs]").forEach(setupTabs);
    document.querySelectorAll("form[data-rules-url]").forEach(setupRules);
    var quick = document.getElementById("quick-create");
    if (quick) { setupQuick(quick); }
  });
})();
