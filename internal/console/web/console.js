// The console's only script: drag and drop, one click per form, and live
// numbers by polling JSON (no page reloads). Everything works without it
// except the live numbers.
"use strict";
(function () {
  // Drag and drop onto the upload area submits the dropped file.
  var drop = document.getElementById("drop");
  var file = document.getElementById("file");
  if (drop && file) {
    ["dragenter", "dragover"].forEach(function (t) {
      drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      drop.addEventListener(t, function () { drop.classList.remove("over"); });
    });
    drop.addEventListener("drop", function (e) {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files.length) {
        file.files = e.dataTransfer.files;
        document.getElementById("upload-form").requestSubmit();
      }
    });
  }
  // A submitted form's buttons are disabled: one click, one request (the
  // server makes one batch of a review however often it is sent anyway).
  document.querySelectorAll("form").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      var msg = f.getAttribute("data-confirm");
      if (msg && !window.confirm(msg)) { e.preventDefault(); return; }
      setTimeout(function () {
        f.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; b.setAttribute("aria-busy", "true"); });
      }, 0);
    });
  });

  function poll(url, every, apply) {
    var run = function () {
      fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (d) { var next = d ? apply(d) : every; setTimeout(run, next || every); })
        .catch(function () { setTimeout(run, every * 3); });
    };
    setTimeout(run, every);
  }
  function text(el, v) { if (el && el.textContent !== String(v)) { el.textContent = v; } }

  // The batches list: counts of every listed batch, and new batches.
  var list = document.getElementById("batches");
  if (list) {
    poll(list.getAttribute("data-live"), 2000, function (batches) {
      var known = {};
      list.querySelectorAll("tr[data-batch]").forEach(function (tr) { known[tr.getAttribute("data-batch")] = tr; });
      var fresh = batches.some(function (b) { return !known[b.id]; });
      if (fresh) {
        // A batch appeared: fetch the page's table once (still no reload).
        fetch(location.href, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var body = doc.querySelector("#batches tbody");
          if (body) { list.querySelector("tbody").replaceWith(body); }
        });
        return 2000;
      }
      batches.forEach(function (b) {
        var tr = known[b.id];
        var bar = tr.querySelector("progress");
        bar.max = b.rows; bar.value = b.done;
        text(tr.querySelector("[data-f=done]"), b.done);
        Object.keys(b.counts).forEach(function (k) { text(tr.querySelector("[data-f=" + k + "]"), b.counts[k]); });
      });
      return 2000;
    });
  }

  // A batch page: progress bar, counts, rate, ETA and why nothing moves.
  var live = document.getElementById("live");
  if (live) {
    var lastDone = -1;
    poll(live.getAttribute("data-live"), 1000, function (s) {
      if (s.done !== lastDone && lastDone >= 0 && (s.done >= s.total || s.done % 50 === 0)) {
        // Rows ended: refresh this page of results (still no reload).
        fetch(location.href, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
          var body = new DOMParser().parseFromString(html, "text/html").querySelector("#results tbody");
          var mine = document.querySelector("#results tbody");
          if (body && mine) { mine.replaceWith(body); }
        });
      }
      lastDone = s.done;
      var bar = document.getElementById("bar");
      bar.max = s.total; bar.value = s.done;
      text(document.getElementById("done"), s.done);
      text(document.getElementById("total"), s.total);
      text(document.getElementById("percent"), s.percent);
      text(document.getElementById("rate"), s.rate.toFixed(1));
      text(document.getElementById("eta"), s.eta);
      text(document.getElementById("why"), s.why);
      Object.keys(s.counts).forEach(function (k) { text(live.querySelector("[data-count=" + k + "]"), s.counts[k]); });
      var rv = Object.keys(s.reverts).map(function (k) { return "revert " + k + ": " + s.reverts[k]; }).join(" ");
      text(document.getElementById("reverts"), rv);
      // Revert is offered only once every row is final.
      var finished = s.done >= s.total;
      var revert = document.getElementById("revert"), later = document.getElementById("revert-later");
      if (revert) { revert.hidden = !finished; }
      if (later) { later.hidden = finished; }
      return s.done >= s.total ? 5000 : 1000;
    });
  }
})();
