/* Venue check-in that works with no signal.

   The confirmed roster lives in IndexedDB (codes and sha256 of ticket tokens, never raw
   tokens), so a scan or a typed code is answered at once, offline too. Each check-in joins a
   queue with the device's scan time and is posted to the server when there is signal: on
   load, on the `online` event, after each scan and every 30 s while something waits; a sync
   that fails while the phone says it is online (the `online` event often comes before the
   network carries anything) is tried again after 1, 2, 4… s, up to the 30 s beat. The
   server keeps the earliest scan and shrugs off replays, so sending twice is harmless. The
   sync carries X-Checkin-Key (not the CSRF token, which would expire). Every string shown
   comes from the page's data-msg-* attributes, already translated. */
(function () {
  "use strict";

  var root = document.getElementById("checkin");
  if (!root) return;
  var msg = root.dataset;
  var eventId = Number(msg.event);
  var DB_NAME = "cheyou-checkin";
  var CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"; // Crockford: no I, L, O, U
  var BATCH = 200;
  var RETRY_MS = 30000;
  var SAME_QR_PAUSE_MS = 4000;

  var $ = function (selector) { return root.querySelector(selector); };
  var els = {
    result: document.querySelector("[data-checkin-result]"),
    verdict: document.querySelector("[data-checkin-verdict]"),
    who: document.querySelector("[data-checkin-who]"),
    detail: document.querySelector("[data-checkin-detail]"),
    message: document.querySelector("[data-checkin-message]"),
    count: $("[data-checkin-count]"),
    total: $("[data-checkin-total]"),
    pending: $("[data-checkin-pending]"),
    synced: $("[data-checkin-synced]"),
    net: $("[data-checkin-net]"),
    ready: $("[data-checkin-offline-ready]"),
    log: $("[data-checkin-log]"),
    scan: $("[data-checkin-scan]"),
    scanLabel: $("[data-checkin-scan-label]"),
    camera: $("[data-checkin-camera]"),
    video: $("[data-checkin-video]"),
    aim: $("[data-checkin-aim]"),
    code: $("[data-checkin-code]"),
    preview: $("[data-checkin-preview]")
  };

  var roster = { loaded: false, entries: [], byCode: new Map(), byHash: new Map() };
  var queue = [];           // this event's unsynced scans, oldest first
  var shownId = null;       // the queued scan whose verdict the banner shows
  var timeFormat = new Intl.DateTimeFormat(msg.lang || "zh-CN", {
    hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: msg.tz || "Asia/Shanghai"
  });

  // --- IndexedDB -------------------------------------------------------------------------------

  var dbPromise = null;

  function openDb() {
    if (dbPromise) return dbPromise;
    dbPromise = new Promise(function (resolve, reject) {
      var request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = function () {
        var db = request.result;
        db.createObjectStore("rosters", { keyPath: "event" });
        db.createObjectStore("queue", { keyPath: "id" }).createIndex("event", "event");
      };
      request.onsuccess = function () {
        var db = request.result;
        // Logout deletes the database: let it, and open it afresh if this page goes on.
        db.onversionchange = function () { db.close(); dbPromise = null; };
        resolve(db);
      };
      request.onerror = function () { dbPromise = null; reject(request.error); };
    });
    return dbPromise;
  }

  function store(name, mode, work) {
    return openDb().then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx = db.transaction(name, mode);
        var request = work(tx.objectStore(name));
        tx.oncomplete = function () { resolve(request ? request.result : undefined); };
        tx.onerror = tx.onabort = function () { reject(tx.error); };
      });
    });
  }

  function loadQueue() {
    return store("queue", "readonly", function (s) { return s.index("event").getAll(eventId); })
      .then(function (items) {
        queue = (items || []).sort(function (a, b) { return Date.parse(a.scanned_at) - Date.parse(b.scanned_at); });
        return queue;
      });
  }

  function saveRoster() {
    var entries = roster.entries.map(function (e) {
      return { code: e.code, token_sha256: e.token_sha256, nickname: e.nickname, companions: e.companions,
               checked_in_at: e.checked_in_at };
    });
    return store("rosters", "readwrite", function (s) {
      return s.put({ event: eventId, entries: entries, saved_at: new Date().toISOString() });
    });
  }

  // --- the roster ----------------------------------------------------------------------------

  function setRoster(entries) {
    roster.entries = entries;
    roster.byCode = new Map();
    roster.byHash = new Map();
    entries.forEach(function (e) {
      roster.byCode.set(e.code, e);
      roster.byHash.set(e.token_sha256, e);
    });
    roster.loaded = true;
  }

  function loadLocalRoster() {
    return store("rosters", "readonly", function (s) { return s.get(eventId); }).then(function (record) {
      if (record) setRoster(record.entries);
    });
  }

  function refreshRoster() {
    return fetch(msg.rosterUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        // Sent to the login page (a redirect) or refused: the session has ended.
        if (response.redirected || response.status === 401 || response.status === 403) {
          setNet(msg.msgLogin);
          return null;
        }
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (!data) return;
        setRoster(data.registrations);
        renderCounts();
        return saveRoster().then(function () { root.dataset.rosterFresh = "1"; });
      })
      .catch(function () { setOffline(); });
  }

  // The earliest check-in this device knows of: the server's, or a scan still in the queue.
  function firstScan(entry) {
    var times = queue.filter(function (item) { return item.ref === entry.code; })
      .map(function (item) { return item.scanned_at; });
    if (entry.checked_in_at) times.push(entry.checked_in_at);
    times.sort(function (a, b) { return Date.parse(a) - Date.parse(b); });
    return times[0] || null;
  }

  // --- reading a ticket ----------------------------------------------------------------------

  // The same rules as models.events.parse_ticket: a QR's URL or bare token, or a typed code.
  function parseTicket(text) {
    text = (text || "").trim();
    var at = text.lastIndexOf("/t/");
    if (at >= 0) text = text.slice(at + 3).split("?")[0].split("#")[0];
    var code = text.replace(/[\s-]/g, "").toUpperCase().replace(/O/g, "0").replace(/[IL]/g, "1");
    if (code.length === 6 && code.split("").every(function (c) { return CODE_ALPHABET.indexOf(c) >= 0; })) {
      return { kind: "code", value: code };
    }
    if (/^[A-Za-z0-9_-]{16,40}$/.test(text)) return { kind: "token", value: text };
    return null;
  }

  function sha256(text) {
    if (!(window.crypto && crypto.subtle)) return Promise.resolve(null);
    return crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)).then(function (buffer) {
      return Array.from(new Uint8Array(buffer)).map(function (b) { return b.toString(16).padStart(2, "0"); }).join("");
    });
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes).map(function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function lookUp(parsed) {
    if (parsed.kind === "code") return Promise.resolve(roster.byCode.get(parsed.value) || null);
    return sha256(parsed.value).then(function (hash) { return (hash && roster.byHash.get(hash)) || null; });
  }

  function handle(text) {
    var parsed = parseTicket(text);
    if (!parsed) {
      show({ status: "refused", message: msg.msgNoMatch });
      return Promise.resolve();
    }
    return lookUp(parsed).then(function (entry) {
      if (entry) {
        var first = firstScan(entry);
        if (first) {  // this device already knows: no need to send it again
          shownId = null;
          show({ status: "already", entry: entry, at: first });
          addLog("already", entry.nickname, first);
          return;
        }
      }
      var item = { id: newId(), event: eventId, ticket: text.trim(), scanned_at: new Date().toISOString(),
                   ref: entry ? entry.code : null };
      return store("queue", "readwrite", function (s) { return s.put(item); }).then(function () {
        queue.push(item);
        shownId = item.id;
        renderSynced(0);
        if (entry) {
          // On the list, but only this phone knows yet: "recorded", until the server has it.
          show({ status: "queued", entry: entry });
          addLog("ok", entry.nickname, item.scanned_at);
        } else {
          show({ status: "pending", message: msg.msgUnknown });
        }
        renderPending();
        renderCounts();
        flush();
      });
    });
  }

  // --- syncing -------------------------------------------------------------------------------

  var syncing = null;
  var again = false;  // a scan arrived while a sync was running: it may have read the queue before it
  var retryDelay = 1000;  // the next quick retry after a failed sync while online (doubles)
  var retryTimer = null;
  var sent = 0;       // scans the running sync has delivered so far (its batches added up)

  function flush() {
    if (syncing) {
      again = true;
      return syncing;
    }
    sent = 0;
    syncing = sync().then(function (done) {
      syncing = null;
      if (sent) renderSynced(sent);
      if (again) { again = false; return flush(); }
      retrySoon(done);
      return done;
    }, function () { syncing = null; again = false; if (sent) renderSynced(sent); retrySoon(false); return false; });
    return syncing;
  }

  function retrySoon(done) {
    if (done) { retryDelay = 1000; return; }
    if (retryTimer || !queue.length || !navigator.onLine) return;
    retryTimer = setTimeout(function () { retryTimer = null; flush(); }, retryDelay);
    retryDelay = Math.min(retryDelay * 2, RETRY_MS);
  }

  function sync() {
    return loadQueue().then(function (items) {
      renderPending();
      if (!items.length) return true;
      var batch = items.slice(0, BATCH);
      var body = JSON.stringify({ checkins: batch.map(function (i) {
        return { id: i.id, ticket: i.ticket, scanned_at: i.scanned_at };
      }) });
      return fetch(msg.syncUrl, {
        method: "POST", credentials: "same-origin", body: body,
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-Checkin-Key": msg.checkinKey }
      }).then(function (response) {
        if (response.status === 401 || response.status === 403) { setNet(msg.msgLogin); return false; }
        if (!response.ok) return false;  // kept: the next try sends them again
        return response.json().then(function (data) {
          if (!data.results || data.results.length !== batch.length) return false;
          return applyResults(batch, data).then(function () { setNet(null); return sync(); });
        });
      }, function () { setOffline(); return false; });
    });
  }

  function applyResults(batch, data) {
    var byId = new Map(batch.map(function (i) { return [i.id, i]; }));
    (data.results || []).forEach(function (result) {
      var item = byId.get(result.id);
      var code = result.code ? result.code.replace("-", "") : (item && item.ref);
      var entry = code ? roster.byCode.get(code) : null;
      if (entry && result.checked_in_at) entry.checked_in_at = result.checked_in_at;
      if (result.id === shownId) {
        shownId = null;
        if (result.status === "refused") {
          show({ status: "refused", message: result.message });
          addLog("refused", result.message, item && item.scanned_at);
        } else if (!entry || result.status === "already" || els.result.dataset.status !== "ok") {
          show(result.status === "already"
            ? { status: "already", entry: entry || result, at: result.checked_in_at }
            : { status: "ok", entry: entry || result });
        }
      } else if (result.status === "refused") {
        addLog("refused", result.message, item && item.scanned_at);
      }
    });
    var done = batch.map(function (i) { return i.id; });
    sent += done.length;
    return store("queue", "readwrite", function (s) { done.forEach(function (id) { s.delete(id); }); })
      .then(function () {
        queue = queue.filter(function (i) { return done.indexOf(i.id) < 0; });
        renderPending();
        renderCounts(data);
        return roster.loaded ? saveRoster() : null;
      });
  }

  // --- what the page shows -------------------------------------------------------------------

  function fmtTime(iso) {
    return iso ? timeFormat.format(new Date(iso)) : "";
  }

  function companions(n) {
    if (!n) return msg.msgNoCompanions;
    return (n === 1 ? msg.msgCompanionsOne : msg.msgCompanionsOther).replace("{n}", n);
  }

  function displayCode(code) {
    code = (code || "").replace("-", "");
    return code.length === 6 ? code.slice(0, 3) + "-" + code.slice(3) : code;
  }

  function show(result) {
    var verdicts = { ok: msg.msgOk, queued: msg.msgQueued, already: msg.msgAlready, refused: msg.msgRefused,
                     pending: msg.msgPending };
    var entry = result.entry;
    var confirmed = result.status === "ok" && els.result.dataset.status === "queued";  // the same scan, now synced
    els.result.hidden = false;
    els.result.dataset.status = result.status;
    els.result.className = "checkin-result checkin-result-" + result.status;
    els.verdict.textContent = verdicts[result.status];
    els.who.textContent = entry ? entry.nickname : "";
    els.detail.textContent = entry ? displayCode(entry.code) + " · " + companions(entry.companions) : "";
    els.message.textContent = result.status === "already"
      ? msg.msgAlreadyAt.replace("{time}", fmtTime(result.at)) : (result.message || "");
    if (els.preview) els.preview.hidden = true;  // the banner answers for the ticket link too
    var good = result.status === "ok" || result.status === "queued";
    if (navigator.vibrate && !confirmed) navigator.vibrate(good ? 80 : [60, 60, 60]);
  }

  function addLog(status, text, iso) {
    var li = document.createElement("li");
    li.className = "checkin-log-" + status;
    var time = document.createElement("time");
    time.textContent = fmtTime(iso || new Date().toISOString());
    li.appendChild(time);
    li.appendChild(document.createTextNode(" " + (text || "")));
    els.log.insertBefore(li, els.log.firstChild);
    var title = document.querySelector("[data-checkin-log-title]");
    if (title) title.hidden = false;
    while (els.log.children.length > 30) els.log.removeChild(els.log.lastChild);
  }

  function renderCounts(server) {
    if (server && typeof server.checked_in === "number" && !queue.length) {  // nothing unsent: the server knows best
      els.count.textContent = String(server.checked_in);
      els.total.textContent = String(server.confirmed);
    } else if (roster.loaded) {
      var checked = roster.entries.filter(function (e) { return firstScan(e); }).length;
      els.count.textContent = String(checked);
      els.total.textContent = String(roster.entries.length);
    }
  }

  function renderPending() {
    var n = queue.length;
    els.pending.dataset.checkinPending = String(n);
    els.pending.textContent = msg.msgWaiting.replace("{n}", n);
    els.pending.hidden = n === 0;
  }

  // "N check-ins synced" after a sync that sent N; hidden again once a new scan waits.
  function renderSynced(n) {
    if (!els.synced) return;
    els.synced.dataset.checkinSynced = String(n);
    els.synced.textContent = n ? (n === 1 ? msg.msgSyncedOne : msg.msgSyncedOther).replace("{n}", n) : "";
    els.synced.hidden = !n;
  }

  function setNet(text) {
    els.net.textContent = text || "";
    els.net.hidden = !text;
  }

  function setOffline() {
    setNet(msg.msgOffline);
  }

  // The service worker keeps this page for reloads with no signal; say so once it has.
  function checkKept(triesLeft) {
    if (!window.caches || !els.ready) return;
    caches.match(location.href, { ignoreVary: true, ignoreSearch: false }).then(function (hit) {
      if (hit) {
        els.ready.hidden = false;
        els.ready.dataset.ready = "1";
      } else if (triesLeft > 0) {
        setTimeout(function () { checkKept(triesLeft - 1); }, 1000);
      }
    }).catch(function () {});
  }

  // --- the camera ----------------------------------------------------------------------------

  var camera = { stream: null, on: false, detector: null, canvas: null, ctx: null, last: "", lastAt: 0 };

  function startCamera() {
    if (!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) { setNet(msg.msgCamera); return; }
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(function (stream) {
        camera.stream = stream;
        camera.on = true;
        els.video.srcObject = stream;
        els.camera.hidden = false;
        els.aim.textContent = msg.msgAim;
        els.scanLabel.textContent = msg.msgStop;
        els.scan.setAttribute("aria-pressed", "true");
        var playing = els.video.play();
        if (playing && playing.catch) playing.catch(function () {});
        return makeDetector();
      })
      .then(function () {
        root.dataset.decoder = camera.detector ? "native" : "jsqr";
        if (camera.on) tick();
      })
      .catch(function () { stopCamera(); setNet(msg.msgCamera); });
  }

  // BarcodeDetector where the browser has one (not on Linux Chromium, iOS or most Android
  // phones in China); the jsQR library otherwise.
  function makeDetector() {
    camera.detector = null;
    if (!("BarcodeDetector" in window)) return Promise.resolve();
    return window.BarcodeDetector.getSupportedFormats().then(function (formats) {
      if (formats.indexOf("qr_code") >= 0) camera.detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    }).catch(function () {});
  }

  function stopCamera() {
    camera.on = false;
    if (camera.stream) camera.stream.getTracks().forEach(function (t) { t.stop(); });
    camera.stream = null;
    els.video.srcObject = null;
    els.camera.hidden = true;
    els.scanLabel.textContent = msg.msgScan;
    els.scan.setAttribute("aria-pressed", "false");
  }

  function decodeFrame() {
    var video = els.video;
    if (video.readyState < 2 || !video.videoWidth) return Promise.resolve(null);
    if (camera.detector) {
      return camera.detector.detect(video).then(function (codes) {
        return codes.length ? codes[0].rawValue : null;
      }, function () { camera.detector = null; return null; });
    }
    if (!window.jsQR) return Promise.resolve(null);
    // A frame at most 640 px wide is plenty for a ticket held up to the phone, and quick.
    var scale = Math.min(1, 640 / video.videoWidth);
    var w = Math.round(video.videoWidth * scale), h = Math.round(video.videoHeight * scale);
    if (!camera.canvas) {
      camera.canvas = document.createElement("canvas");
      camera.ctx = camera.canvas.getContext("2d", { willReadFrequently: true });
    }
    camera.canvas.width = w;
    camera.canvas.height = h;
    camera.ctx.drawImage(video, 0, 0, w, h);
    var found = window.jsQR(camera.ctx.getImageData(0, 0, w, h).data, w, h, { inversionAttempts: "dontInvert" });
    return Promise.resolve(found ? found.data : null);
  }

  function tick() {
    if (!camera.on) return;
    decodeFrame().then(function (text) {
      if (!text) return;
      var now = Date.now();
      var repeat = text === camera.last && now - camera.lastAt < SAME_QR_PAUSE_MS;
      camera.last = text;
      camera.lastAt = now;  // the same QR held in view answers once
      if (!repeat) return handle(text);
    }).catch(function () {}).then(function () {
      if (camera.on) setTimeout(tick, 120);  // about 8 frames a second: quick, easy on the battery
    });
  }

  // --- wiring --------------------------------------------------------------------------------

  function wire() {
    document.querySelectorAll("form[data-checkin-form]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var field = form.elements.code;
        var text = field ? field.value : "";
        if (!text.trim()) { if (field) field.focus(); return; }
        handle(text).then(function () {
          if (field && field.type !== "hidden") { field.value = ""; field.focus(); }
        });
      });
    });
    if (els.scan) {
      els.scan.hidden = false;
      els.scan.addEventListener("click", function () { if (camera.on) stopCamera(); else startCamera(); });
    }
    document.addEventListener("visibilitychange", function () { if (document.hidden && camera.on) stopCamera(); });
    window.addEventListener("online", function () { setNet(null); flush().then(refreshRoster); });
    window.addEventListener("offline", setOffline);
    setInterval(function () { if (queue.length) flush(); }, RETRY_MS);
    if (navigator.serviceWorker) {
      navigator.serviceWorker.addEventListener("message", function (event) {
        if (event.data && event.data.type === "kept") checkKept(0);
      });
    }
  }

  function start() {
    if (!window.indexedDB) return;  // no offline store: the plain form posts to the server
    openDb().then(function () {
      wire();
      if (navigator.onLine === false) setOffline();
      return Promise.all([loadLocalRoster(), loadQueue()]);
    }).then(function () {
      renderCounts();
      renderPending();
      root.dataset.checkinReady = "1";  // tests wait for this
      checkKept(15);
      return flush().then(refreshRoster);
    }).catch(function () { /* private browsing without IndexedDB: the plain form still works */ });
  }

  start();
})();
