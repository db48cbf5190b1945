/* Cheyou service worker {{ version }}: precache the shell, network-first for pages,
   cache-first for versioned static files, and never keep a signed-in member's pages —
   except those that mark themselves `X-Cheyou-Offline: keep` (tickets, the check-in page),
   which go to a private cache that logout wipes. */
const VERSION = "{{ version }}";
const SHELL = "cheyou-shell-" + VERSION;
const PAGES = "cheyou-pages-" + VERSION;
const PRIVATE = "cheyou-private-" + VERSION;
const OFFLINE_URL = "{{ offline_url }}";
const PRECACHE = {{ precache|tojson }};
const OFFLINE_HEADER = "X-Cheyou-Offline";
const LOGOUT_PATH = "{{ url_for('auth.logout') }}";
// The check-in page's offline roster and queue (IndexedDB): a shared phone keeps none after logout.
const DEVICE_DATABASES = ["cheyou-checkin"];

self.addEventListener("install", (event) => {
  // Without cookies: the shell is the same for everyone (a member's offline page cached here
  // would outlive their logout), and no answer can set a session cookie over a login meanwhile.
  const requests = PRECACHE.map((url) => new Request(url, { credentials: "omit" }));
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(requests)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("cheyou-") && !k.endsWith(VERSION)).map((k) => caches.delete(k))))
      .then(() => self.clients.claim())
      .then(keepOpenPages)
  );
});

function cacheable(response) {
  // Pages marked private/no-store belong to one member: they never enter a cache.
  const cc = response.headers.get("Cache-Control") || "";
  return response.ok && response.type === "basic" && !/no-store|private/.test(cc);
}

function keepable(response) {
  // A member's page that asked to be kept on this device for offline use (until logout).
  return response.ok && response.type === "basic" && !response.redirected && response.headers.get(OFFLINE_HEADER) === "keep";
}

async function keepPage(url, response) {
  // Store the page, and the versioned files it loads, so it also opens with no signal.
  const html = await response.clone().text();
  await (await caches.open(PRIVATE)).put(url, response);
  const shell = await caches.open(SHELL);
  const assets = new Set();
  for (const match of html.matchAll(/(?:src|href)="(\/static\/[^"?]+\?v=[0-9a-f]+)"/g)) assets.add(match[1]);
  await Promise.all([...assets].map(async (asset) => {
    if (await shell.match(asset)) return;
    try {
      const file = await fetch(asset);
      if (file.ok) await shell.put(asset, file);
    } catch (error) { /* offline again: the next visit tries */ }
  }));
  const clients = await self.clients.matchAll({ type: "window" });
  clients.forEach((client) => client.postMessage({ type: "kept", url: url }));
}

async function keepClientPage(client) {
  // A page that did not pass through this worker: fetch it once more and keep it if it asks.
  const url = new URL(client.url);
  if (url.origin !== self.location.origin) return;
  try {
    const response = await fetch(url.href, { credentials: "same-origin" });
    if (keepable(response)) await keepPage(url.href, response);
  } catch (error) { /* offline: nothing to keep */ }
}

async function keepOpenPages() {
  // Pages opened before this worker controlled them, so a check-in page opened on first visit
  // still reloads with no signal. A page still loading now is not among them: it asks itself
  // ("keep" below) once it has loaded.
  const clients = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  await Promise.all(clients.map(keepClientPage));
}

async function networkFirst(event) {
  const request = event.request;
  try {
    const response = await fetch(request);
    if (keepable(response)) {
      event.waitUntil(keepPage(request.url, response.clone()));
    } else if (cacheable(response)) {
      const copy = response.clone();
      caches.open(PAGES).then((cache) => cache.put(request, copy));
    }
    return response;
  } catch (error) {
    const kept = await caches.open(PRIVATE).then((cache) => cache.match(request, { ignoreVary: true }));
    const cached = kept || (await caches.open(PAGES).then((cache) => cache.match(request, { ignoreVary: true })));
    return cached || (await caches.match(OFFLINE_URL, { ignoreSearch: true })) || Response.error();
  }
}

async function cacheFirst(request) {
  const cached = await caches.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) {
    const copy = response.clone();
    caches.open(SHELL).then((cache) => cache.put(request, copy));
  }
  return response;
}

function forgetPages() {
  return Promise.all([caches.delete(PRIVATE), caches.delete(PAGES)]);
}

function forgetMember() {
  // Everything personal this device keeps: kept pages, cached pages, the check-in database.
  const dropped = DEVICE_DATABASES.map((name) => new Promise((resolve) => {
    const request = indexedDB.deleteDatabase(name);
    request.onsuccess = request.onerror = request.onblocked = () => resolve();
  }));
  return Promise.all([forgetPages(), ...dropped]);
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.method === "POST" && url.pathname === LOGOUT_PATH) {
    // Logging out: drop the member's kept pages at once (the response's Clear-Site-Data does
    // too, where the browser supports it); the request itself goes to the network untouched.
    event.waitUntil(forgetMember());
    return;
  }
  if (request.method !== "GET") return;
  if (request.mode === "navigate") {
    event.respondWith(networkFirst(event));
  } else if (url.pathname.startsWith("/static/") && url.searchParams.has("v")) {
    event.respondWith(cacheFirst(request));
  }
});

self.addEventListener("message", (event) => {
  if (event.data === "clear") {
    event.waitUntil(forgetPages());
  } else if (event.data && event.data.type === "keep" && event.source && event.source.url) {
    // The URL is the sending window's own, never one it names.
    event.waitUntil(keepClientPage(event.source));
  }
});

/* Web Push (services/push.py sends; static/js/push.js subscribes). The payload is JSON:
   {title, body, url, tag, icon, badge}. The tag is per notification, so a message the server
   delivered twice (at least once) shows once. */
const PUSH_KEY_URL = "{{ url_for('me.push_key') }}";
const PUSH_SUBSCRIPTIONS_URL = "{{ url_for('me.push_subscribe') }}";
const PUSH_ICON = "{{ url_for('static', filename='img/icon-192.png') }}";
const INBOX_URL = "{{ url_for('me.notifications') }}";

function ownUrl(url) {
  // Only links on this site are opened: a payload can never send the member elsewhere.
  try {
    const resolved = new URL(url, self.location.origin);
    return resolved.origin === self.location.origin ? resolved.href : null;
  } catch (error) {
    return null;
  }
}

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (error) {
    data = { body: event.data ? event.data.text() : "" };
  }
  const options = {
    body: data.body || "",
    icon: data.icon || PUSH_ICON,
    badge: data.badge || PUSH_ICON,
    data: { url: ownUrl(data.url) || ownUrl(INBOX_URL) },
  };
  if (data.tag) options.tag = data.tag;
  event.waitUntil(self.registration.showNotification(data.title || "车友圈", options));
});

// Bring the member to URL: a window already on it is focused; else an open window of the site
// is navigated there (WindowClient.navigate) and focused; else a new window opens.
async function openFromNotification(url) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const focus = (client) => client.focus().catch(() => client);
  const already = windows.find((client) => client.url === url);
  if (already) return focus(already);
  for (const client of windows) {
    if (new URL(client.url).origin !== self.location.origin) continue;
    try {
      const navigated = await client.navigate(url);  // null when the page left the site
      if (navigated) return focus(navigated);
    } catch (error) { /* not controlled by this worker: try the next, or open one */ }
  }
  return self.clients.openWindow(url);
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = ownUrl(event.notification.data && event.notification.data.url) || ownUrl(INBOX_URL);
  event.waitUntil(openFromNotification(url));
});

function keyBytes(base64url) {
  const b64 = base64url.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((base64url.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

// The push service replaced or expired this device's subscription: subscribe again with the
// same key and tell the server (it swaps the old endpoint for the new one, keeping the switches).
async function resubscribe(oldSubscription, newSubscription) {
  const answer = await fetch(PUSH_KEY_URL, { credentials: "same-origin" });
  if (!answer.ok || !(answer.headers.get("Content-Type") || "").includes("json")) return;  // signed out
  const { publicKey, csrfToken } = await answer.json();
  const key = (oldSubscription && oldSubscription.options && oldSubscription.options.applicationServerKey) || keyBytes(publicKey);
  const subscription = newSubscription ||
    (await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }));
  await fetch(PUSH_SUBSCRIPTIONS_URL, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
    body: JSON.stringify({ ...subscription.toJSON(), oldEndpoint: oldSubscription ? oldSubscription.endpoint : null }),
  });
}

self.addEventListener("pushsubscriptionchange", (event) => {
  event.waitUntil(resubscribe(event.oldSubscription, event.newSubscription));
});
