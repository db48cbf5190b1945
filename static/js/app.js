/* Cheyou front-end behaviour: small, no inline scripts (the CSP forbids them). */
(function () {
  "use strict";

  // Register the service worker (scope "/") once the page has loaded.
  if ("serviceWorker" in navigator && document.body.dataset.sw) {
    window.addEventListener("load", function () {
      navigator.serviceWorker.register(document.body.dataset.sw, { scope: "/" }).catch(function () {});
      // A page to keep for offline use (tickets, check-in) that loaded without passing through
      // the worker (first visit, the worker activating meanwhile, a hard reload) asks it to.
      var nav = performance.getEntriesByType ? performance.getEntriesByType("navigation")[0] : null;
      if (document.body.hasAttribute("data-offline-keep") && !(nav && nav.workerStart > 0)) {
        navigator.serviceWorker.ready.then(function (registration) {
          if (registration.active) registration.active.postMessage({ type: "keep" });
        });
      }
    });
  }

  function toast(message) {
    var el = document.getElementById("toast");
    if (!el) return;
    el.textContent = message;
    el.hidden = false;
    clearTimeout(el._timer);
    el._timer = setTimeout(function () { el.hidden = true; }, 4000);
  }

  // Messages come translated from the page (data-msg-* on #toast).
  var toastEl = document.getElementById("toast");
  var messages = toastEl ? toastEl.dataset : {};

  document.addEventListener("htmx:sendError", function () { toast(messages.msgNetwork); });
  // A form whose page expired comes back with what was typed, the notice and a fresh token
  // (400 with X-Cheyou-Form-Expired, blueprints/web.py): swap it in like a refused form.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status === 400 && xhr.getResponseHeader("X-Cheyou-Form-Expired")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    if (status === 401) return; // HX-Redirect to the login page follows
    toast(status === 429 ? messages.msgTooMany : status === 400 ? messages.msgExpired : messages.msgError);
  });

  // Logging out wipes what this phone keeps, the check-in queue included (see sw.js): ask first
  // when scans made without signal are still waiting to be sent.
  function unsentCheckins() {
    // indexedDB.open() would create an empty database: look it up first (where the browser can).
    if (!window.indexedDB || !indexedDB.databases) return Promise.resolve(0);
    return indexedDB.databases().then(function (dbs) {
      if (!dbs.some(function (d) { return d.name === "cheyou-checkin"; })) return 0;
      return new Promise(function (resolve) {
        var request = indexedDB.open("cheyou-checkin");
        request.onerror = function () { resolve(0); };
        request.onsuccess = function () {
          var db = request.result;
          if (!db.objectStoreNames.contains("queue")) { db.close(); resolve(0); return; }
          var count = db.transaction("queue").objectStore("queue").count();
          count.onsuccess = function () { db.close(); resolve(count.result); };
          count.onerror = function () { db.close(); resolve(0); };
        };
      });
    }).catch(function () { return 0; });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-logout") || form.dataset.confirmed) return;
    event.preventDefault();
    unsentCheckins().then(function (n) {
      if (n && !window.confirm(form.dataset.msgUnsent)) return;
      form.dataset.confirmed = "1";
      form.requestSubmit ? form.requestSubmit() : form.submit();
    });
  });

  // Keep the unread badges in step after marking notifications read.
  document.addEventListener("notifications-changed", function () {
    fetch("/me/unread-badge", { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        document.querySelectorAll(".badge[data-unread]").forEach(function (el) { el.remove(); });
        if (html.trim()) {
          document.querySelectorAll('a[href="/me/notifications"], .tabbar a[href="/me"]').forEach(function (a) {
            a.insertAdjacentHTML("beforeend", html);
          });
        }
      });
  });
})();
