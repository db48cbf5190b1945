/* Web Push opt-in on /me/notifications (templates/me/_push_devices.html). Nothing happens until
   the member presses "turn on push on this device": only then is the notification permission
   asked for and the browser subscribed; the subscription is posted to the server as JSON with
   the page's CSRF token. "Turn off" unsubscribes the browser and tells the server. */
(function () {
  "use strict";

  function section() { return document.getElementById("push-devices"); }

  function supported() {
    return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window &&
      window.isSecureContext && !!(window.crypto && crypto.subtle);
  }

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  }

  function say(message) {
    var el = section();
    var status = el && el.querySelector("[data-push-status]");
    if (status) status.textContent = message || "";
  }

  function msg(name) {
    var el = section();
    return el ? el.dataset["msg" + name] || "" : "";
  }

  function keyBytes(base64url) {
    var b64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    b64 += "===".slice((b64.length + 3) % 4);
    var raw = atob(b64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  function sha256(text) {
    return crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)).then(function (buffer) {
      return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
        return ("0" + b.toString(16)).slice(-2);
      }).join("");
    });
  }

  function registration() {
    // app.js registers the worker on load; registering again is harmless and waits for nothing.
    return navigator.serviceWorker.register(document.body.dataset.sw, { scope: "/" })
      .then(function () { return navigator.serviceWorker.ready; });
  }

  function send(method, body) {
    return fetch(section().dataset.pushUrl, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body)
    });
  }

  function errorOf(response) {
    return response.json().then(function (data) { return data.error || msg("Failed"); },
      function () { return msg("Failed"); });
  }

  function reloadSection() {
    // The device list as the server has it now (a full page fetch; the section is swapped in).
    return fetch(window.location.pathname, { credentials: "same-origin" }).then(function (response) {
      return response.text();
    }).then(function (html) {
      var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("push-devices");
      var old = section();
      if (fresh && old) {
        old.replaceWith(fresh);
        if (window.htmx) window.htmx.process(fresh);
      }
    });
  }

  function show(on) {
    var el = section();
    if (!el) return;
    el.querySelector("[data-push-enable]").hidden = on;
    el.querySelector("[data-push-disable]").hidden = !on;
  }

  function refresh() {
    var el = section();
    if (!el) return Promise.resolve();
    if (!supported()) {
      el.querySelector("[data-push-unsupported]").hidden = false;
      return Promise.resolve();
    }
    return registration().then(function (reg) { return reg.pushManager.getSubscription(); }).then(function (sub) {
      if (!sub) { show(false); return; }
      return sha256(sub.endpoint).then(function (digest) {
        var item = el.querySelector('[data-device="' + digest + '"]');
        if (item) item.querySelector("[data-this-device]").hidden = false;
        show(!!item);
      });
    }).catch(function () { show(false); });
  }

  function enable() {
    say(msg("Working"));
    Notification.requestPermission().then(function (permission) {
      if (permission !== "granted") { say(msg("Denied")); return; }
      return Promise.all([
        registration(),
        fetch(section().dataset.pushKeyUrl, { credentials: "same-origin" }).then(function (r) { return r.json(); })
      ]).then(function (both) {
        var reg = both[0];
        var key = both[1].publicKey;
        return reg.pushManager.getSubscription().then(function (existing) {
          return existing || reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
        });
      }).then(function (sub) {
        return send("POST", sub.toJSON()).then(function (response) {
          if (response.ok) return reloadSection().then(refresh).then(function () { say(msg("On")); });
          // Refused (a key the server cannot use, an address it will not call): leave nothing behind.
          return errorOf(response).then(function (error) {
            return sub.unsubscribe().catch(function () {}).then(function () { say(error); });
          });
        });
      });
    }).catch(function () { say(msg("Failed")); });
  }

  function disable() {
    say(msg("Working"));
    registration().then(function (reg) { return reg.pushManager.getSubscription(); }).then(function (sub) {
      if (!sub) return null;
      var endpoint = sub.endpoint;
      return sub.unsubscribe().catch(function () {}).then(function () { return send("DELETE", { endpoint: endpoint }); });
    }).then(function () {
      return reloadSection().then(refresh).then(function () { say(msg("Off")); });
    }).catch(function () { say(msg("Failed")); });
  }

  document.addEventListener("click", function (event) {
    if (!section()) return;
    if (event.target.closest("[data-push-enable]")) enable();
    else if (event.target.closest("[data-push-disable]")) disable();
  });
  // After htmx swapped the device list (a switch, a removal): mark this device and its buttons again.
  document.addEventListener("htmx:afterSettle", function () { if (section()) refresh(); });
  refresh();
}());
