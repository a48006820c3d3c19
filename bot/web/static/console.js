// Live updates for the console: server-sent events tell which case changed; the page reloads only its live part.
(function () {
  "use strict";
  var body = document.body;
  var mode = body.getAttribute("data-live");
  var canned = document.getElementById("canned");
  if (canned) {
    canned.addEventListener("change", function () {
      var box = document.getElementById("reply-text");
      if (canned.value && box) { box.value = canned.value; box.focus(); }
    });
  }
  // A form that takes something away asks first (data-confirm holds the question, in the page's language).
  document.addEventListener("submit", function (e) {
    var question = e.target.getAttribute && e.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { e.preventDefault(); e.stopImmediatePropagation(); }
  }, true);
  // Import upload (admin): sent in the background with a progress bar; only the report is swapped in. Without
  // JavaScript the same form posts and the whole page comes back with the report.
  var upload = document.querySelector("form[data-upload]");
  if (upload && window.FormData && window.XMLHttpRequest) {
    upload.addEventListener("submit", function (e) {
      e.preventDefault();
      var target = document.getElementById(upload.getAttribute("data-upload"));
      var bar = document.getElementById("import-progress");
      var state = document.getElementById("import-state");
      var button = upload.querySelector("button[type=submit]");
      var xhr = new XMLHttpRequest();
      xhr.open("POST", upload.action);
      xhr.setRequestHeader("X-Fragment", "report");
      if (bar) { bar.hidden = false; bar.value = 0; }
      if (state) { state.hidden = false; }
      if (button) { button.disabled = true; }
      xhr.upload.onprogress = function (ev) {
        if (bar && ev.lengthComputable) { bar.value = Math.round(ev.loaded * 100 / ev.total); }
      };
      xhr.upload.onload = function () { if (bar) { bar.removeAttribute("value"); } }; // importing: indeterminate
      xhr.onloadend = function () {
        if (button) { button.disabled = false; }
        if (state) { state.hidden = true; }
        if (bar) { bar.hidden = true; }
        if (xhr.status === 200 || xhr.status === 422) {
          if (target) { target.innerHTML = xhr.responseText; target.focus(); }
        } else {
          upload.submit(); // anything else (an expired form, a lost connection): the plain post shows it
        }
      };
      xhr.send(new FormData(upload));
    });
  }
  if (!mode || !window.EventSource) return;
  var pending = false;
  function refresh() {
    if (pending) return;
    pending = true;
    setTimeout(function () {
      var url = new URL(window.location.href);
      var target = mode === "inbox" ? "inbox-rows" : "case-live";
      url.searchParams.set("fragment", mode === "inbox" ? "rows" : "live");
      fetch(url.toString(), { credentials: "same-origin" }).then(function (r) {
        return r.ok ? r.text() : null;
      }).then(function (html) {
        pending = false;
        var node = document.getElementById(target);
        if (html !== null && node) { node.innerHTML = html; }
      }).catch(function () { pending = false; });
    }, 150);
  }
  var caseId = body.getAttribute("data-case-id");
  var state = document.getElementById("live-state");
  var source = new EventSource("/events");
  source.onopen = function () { if (state) state.classList.remove("off"); };
  source.onerror = function () { if (state) state.classList.add("off"); };
  source.onmessage = function (message) {
    var event;
    try { event = JSON.parse(message.data); } catch (e) { return; }
    if (mode === "inbox" && event.type !== "delivery") refresh();
    else if (mode === "case" && (event.type === "delivery" || String(event.case_id) === caseId)) refresh();
  };
})();
