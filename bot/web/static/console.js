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
