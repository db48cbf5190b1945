/* The story editor on a phone: a small format bar over the text, a nine-photo picker with
   thumbnails (remove, move earlier/later), photos made smaller on the phone before they are
   sent, and an upload with a progress bar. Without this script the plain form works as it is.

   The form is sent with XMLHttpRequest as the browser would send it (same fields, the CSRF
   token and the one-time nonce included), plus the clicked action and the photos in the order
   chosen. It says `HX-Request: true`, so the server answers like it answers htmx: HX-Redirect
   once saved, or the editor fragment (a preview, a 422 with what was typed) that is swapped in
   place here; the photos picked stay picked. Every string shown comes from data-msg-*. */
(function () {
  "use strict";

  var MAX_SIDE = 1600;          // long side sent; the server keeps at most 1280
  var JPEG_QUALITY = 0.85;
  var SMALL_BYTES = 1024 * 1024; // a photo this small, already short enough, goes as it is

  var items = [];               // photos picked, in the order chosen: {file, url, ready}
  var queue = Promise.resolve(); // one photo made smaller at a time (a weak phone's memory)
  var busy = false;
  var ui = null;                // the current editor's elements (renewed after each swap)

  // --- the format bar ----------------------------------------------------------------------

  function replaceSelection(area, start, end, text, selectFrom, selectTo) {
    area.focus();
    area.setSelectionRange(start, end);
    // execCommand keeps the change on the text box's undo stack; setRangeText where it is gone.
    var done = false;
    try { done = document.execCommand("insertText", false, text); } catch (e) { done = false; }
    if (!done || area.value.slice(start, start + text.length) !== text) {
      area.setRangeText(text, start, end, "end");
      area.dispatchEvent(new Event("input", { bubbles: true }));
    }
    area.setSelectionRange(selectFrom, selectTo);
  }

  function wrap(area, mark, placeholder) {
    var start = area.selectionStart, end = area.selectionEnd, value = area.value;
    var chosen = value.slice(start, end);
    // Already wrapped: the same button takes the marks off again.
    if (chosen && value.slice(start - mark.length, start) === mark && value.slice(end, end + mark.length) === mark) {
      replaceSelection(area, start - mark.length, end + mark.length, chosen,
                       start - mark.length, end - mark.length);
      return;
    }
    var inner = chosen.trim() ? chosen : placeholder;
    replaceSelection(area, start, end, mark + inner + mark, start + mark.length, start + mark.length + inner.length);
  }

  function prefixLines(area, prefix, placeholder) {
    var value = area.value;
    var start = value.lastIndexOf("\n", area.selectionStart - 1) + 1;
    var end = value.indexOf("\n", area.selectionEnd);
    if (end < 0 || (area.selectionEnd > area.selectionStart && value[area.selectionEnd - 1] === "\n")) {
      end = end < 0 ? value.length : area.selectionEnd - 1;
    }
    var lines = value.slice(start, end).split("\n");
    var all = lines.every(function (line) { return line.indexOf(prefix) === 0; });
    var text;
    if (all && lines.join("")) {
      text = lines.map(function (line) { return line.slice(prefix.length); }).join("\n");
      replaceSelection(area, start, end, text, start, start + text.length);
      return;
    }
    if (!lines.join("").trim()) {
      text = prefix + placeholder;
      replaceSelection(area, start, end, text, start + prefix.length, start + text.length);
      return;
    }
    text = lines.map(function (line) { return line.trim() ? prefix + line.replace(/^(#+ |- |> )/, "") : line; }).join("\n");
    replaceSelection(area, start, end, text, start + text.length, start + text.length);
  }

  function link(area, placeholder) {
    var start = area.selectionStart, end = area.selectionEnd;
    var chosen = area.value.slice(start, end).trim();
    var isUrl = /^https?:\/\/\S+$/i.test(chosen);
    var words = isUrl || !chosen ? placeholder : chosen;
    var url = isUrl ? chosen : "https://";
    var text = "[" + words + "](" + url + ")";
    if (isUrl || !chosen) {  // the words are to be typed next
      replaceSelection(area, start, end, text, start + 1, start + 1 + words.length);
    } else {                 // the address is to be typed (or pasted) next
      var at = start + words.length + 3;
      replaceSelection(area, start, end, text, at, at + url.length);
    }
  }

  function format(kind, area, bar) {
    var texts = bar.dataset;
    if (kind === "bold") wrap(area, "**", texts.textBold);
    else if (kind === "heading") prefixLines(area, "## ", texts.textHeading);
    else if (kind === "list") prefixLines(area, "- ", texts.textList);
    else if (kind === "quote") prefixLines(area, "> ", texts.textQuote);
    else if (kind === "link") link(area, texts.textLink);
  }

  // --- photos: picking, ordering, making smaller --------------------------------------------

  function shrink(file) {
    if (!window.createImageBitmap || !document.createElement("canvas").toBlob) return Promise.resolve(file);
    // "from-image" turns the photo upright as its EXIF says; the canvas keeps no EXIF (GPS).
    return createImageBitmap(file, { imageOrientation: "from-image" }).then(function (bitmap) {
      var width = bitmap.width, height = bitmap.height, longest = Math.max(width, height);
      if (longest <= MAX_SIDE && file.size <= SMALL_BYTES && /^image\/(jpeg|png|webp)$/.test(file.type)) {
        bitmap.close();
        return file;
      }
      var scale = Math.min(1, MAX_SIDE / longest);
      var canvas = document.createElement("canvas");
      canvas.width = Math.max(1, Math.round(width * scale));
      canvas.height = Math.max(1, Math.round(height * scale));
      var ctx = canvas.getContext("2d");
      ctx.fillStyle = "#fff";  // transparency onto white, as the server does
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.imageSmoothingEnabled = true;
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      bitmap.close();
      return new Promise(function (resolve) {
        canvas.toBlob(function (blob) {
          canvas.width = canvas.height = 0;  // free the pixels now, not at the next GC
          resolve(blob || file);
        }, "image/jpeg", JPEG_QUALITY);
      });
    }).catch(function () {
      return file;  // a format this browser cannot draw (HEIC...): the server says what it thinks
    });
  }

  function jpegName(name) {
    return (name || "photo").replace(/\.[^.]*$/, "") + ".jpg";
  }

  function add(files) {
    var room = ui.max - keptExisting() - items.length;
    var taken = Array.prototype.slice.call(files, 0, Math.max(0, room));
    taken.forEach(function (file) {
      var item = { file: file, url: URL.createObjectURL(file), upload: null, name: file.name };
      item.ready = queue = queue.then(function () { return shrink(file); }).then(function (blob) {
        item.upload = blob;
        item.name = blob === file ? file.name : jpegName(file.name);
        return blob;
      });
      items.push(item);
    });
    renderPhotos(files.length > taken.length ? ui.picker.dataset.msgTooMany : "");
  }

  function keptExisting() {
    return ui.form.querySelectorAll("input[data-existing-photo]:not(:checked)").length;
  }

  function label(template, n) {
    return template.replace("{n}", String(n));
  }

  function photoButton(cls, text, name, onClick) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "photo-tool " + cls;
    button.setAttribute("aria-label", name);
    var glyph = document.createElement("span");
    glyph.setAttribute("aria-hidden", "true");
    glyph.textContent = text;
    button.appendChild(glyph);
    button.addEventListener("click", onClick);
    return button;
  }

  function move(index, by, focusClass) {
    var target = index + by;
    if (target < 0 || target >= items.length) return;
    var moved = items.splice(index, 1)[0];
    items.splice(target, 0, moved);
    renderPhotos("");
    var cell = ui.list.children[target];
    var button = cell && cell.querySelector("." + focusClass);
    if (button && button.disabled) button = cell.querySelector(focusClass === "photo-earlier" ? ".photo-later" : ".photo-earlier");
    if (button) button.focus();
  }

  function remove(index) {
    var gone = items.splice(index, 1)[0];
    URL.revokeObjectURL(gone.url);
    renderPhotos("");
    var next = ui.list.children[Math.min(index, items.length - 1)];
    (next ? next.querySelector(".photo-remove") : ui.add).focus();
  }

  function renderPhotos(warning) {
    var msg = ui.picker.dataset;
    ui.list.textContent = "";
    items.forEach(function (item, index) {
      var n = index + 1;
      var li = document.createElement("li");
      li.className = "photo-cell";
      li.dataset.name = item.file.name;
      var img = document.createElement("img");
      img.src = item.url;
      img.alt = label(msg.msgPhoto, n);
      img.onerror = function () { li.classList.add("photo-unshown"); };
      var name = document.createElement("span");
      name.className = "photo-name";
      name.textContent = item.file.name;
      li.appendChild(img);
      li.appendChild(name);
      li.appendChild(photoButton("photo-remove", "×", label(msg.msgRemove, n), function () { remove(index); }));
      var earlier = photoButton("photo-earlier", "‹", label(msg.msgEarlier, n), function () { move(index, -1, "photo-earlier"); });
      var later = photoButton("photo-later", "›", label(msg.msgLater, n), function () { move(index, 1, "photo-later"); });
      earlier.disabled = index === 0;
      later.disabled = index === items.length - 1;
      var tools = document.createElement("div");
      tools.className = "photo-order";
      tools.appendChild(earlier);
      tools.appendChild(later);
      li.appendChild(tools);
      ui.list.appendChild(li);
    });
    var total = keptExisting() + items.length;
    ui.add.hidden = total >= ui.max;
    ui.count.textContent = warning || label(msg.msgCount, total);
    ui.count.classList.toggle("error", Boolean(warning) || total > ui.max);
    if (total > ui.max) ui.count.textContent = msg.msgTooMany;
  }

  // --- sending -------------------------------------------------------------------------------

  function progress(text, percent) {
    ui.progress.hidden = false;
    ui.progressText.textContent = text;
    if (percent === null) ui.bar.removeAttribute("value");
    else ui.bar.value = percent;
  }

  function fail(text) {
    busy = false;
    ui.progress.hidden = true;
    setButtons(false);
    var note = ui.form.querySelector("[data-send-error]");
    if (!note) {
      note = document.createElement("p");
      note.className = "form-error";
      note.setAttribute("role", "alert");
      note.dataset.sendError = "";
      ui.form.querySelector(".actions").insertAdjacentElement("beforebegin", note);
    }
    note.textContent = text;
  }

  function setButtons(disabled) {
    ui.form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = disabled; });
  }

  function send(action) {
    var msg = ui.form.dataset;
    busy = true;
    setButtons(true);
    var withPhotos = action !== "preview" && items.length > 0;  // a preview shows the words only
    if (withPhotos) progress(msg.msgPreparing, null);
    var ready = withPhotos ? Promise.all(items.map(function (item) { return item.ready; })) : Promise.resolve();
    ready.then(function () {
      var data = new FormData(ui.form);
      data.delete(ui.input.name);
      data.set("action", action);
      if (withPhotos) items.forEach(function (item) { data.append(ui.input.name, item.upload, item.name); });
      var xhr = new XMLHttpRequest();
      xhr.open("POST", ui.form.getAttribute("action"));  // not form.action: the buttons are named "action"
      xhr.setRequestHeader("HX-Request", "true");
      var token = ui.form.querySelector("input[name=csrf_token]");
      if (token) xhr.setRequestHeader("X-CSRFToken", token.value);
      if (action !== "preview") {
        progress(label(msg.msgUploading.replace("{percent}", "{n}%"), 0), 0);
        xhr.upload.onprogress = function (event) {
          if (!event.lengthComputable) return;
          var percent = Math.round((event.loaded / event.total) * 100);
          progress(label(msg.msgUploading.replace("{percent}", "{n}%"), percent), percent);
        };
        xhr.upload.onload = function () { progress(msg.msgSaving, null); };
      }
      xhr.onload = function () { answered(xhr, msg); };
      xhr.onerror = xhr.ontimeout = function () { fail(msg.msgNetwork); };
      xhr.send(data);
    });
  }

  function answered(xhr, msg) {
    var there = xhr.getResponseHeader("HX-Redirect");
    if (there) {
      ui.progress.hidden = false;
      window.location.assign(there);
      return;
    }
    var expired = xhr.status === 400 && xhr.getResponseHeader("X-Cheyou-Form-Expired");  // kept, fresh token
    if ((xhr.status === 200 || xhr.status === 422 || expired) && xhr.responseText.indexOf("story-editor") >= 0) {
      var holder = document.createElement("div");
      holder.innerHTML = xhr.responseText;  // our own fragment: the server escaped what was typed
      var fresh = holder.querySelector("#story-editor");
      var old = document.getElementById("story-editor");
      if (fresh && old) {
        old.replaceWith(fresh);
        busy = false;
        setUp(fresh);
        var first = fresh.querySelector("[data-story-preview], .form-error, [aria-invalid=true]");
        if (first) {
          first.scrollIntoView({ block: "center" });
          first.focus({ preventScroll: true });
        }
        return;
      }
    }
    fail(xhr.status === 429 ? msg.msgTooManyRequests : msg.msgError);
  }

  // --- wiring --------------------------------------------------------------------------------

  function setUp(root) {
    var form = root.querySelector("form[data-story-form]");
    if (!form) return;
    var picker = form.querySelector("[data-photo-picker]");
    var input = form.querySelector("input[type=file][name=photos]");
    ui = {
      form: form, picker: picker, input: input,
      list: picker.querySelector("[data-photo-list]"),
      add: picker.querySelector("[data-photo-add]"),
      count: picker.querySelector("[data-photo-count]"),
      max: Number(picker.dataset.max) || 9,
      progress: form.querySelector("[data-upload-progress]"),
      bar: form.querySelector("[data-upload-bar]"),
      progressText: form.querySelector("[data-upload-text]")
    };

    var bar = form.querySelector("[data-format-bar]");
    var area = form.querySelector("textarea[name=body]");
    bar.hidden = false;
    bar.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-format]");
      if (button) format(button.dataset.format, area, bar);
    });

    form.classList.add("js-photos");
    picker.hidden = false;
    input.addEventListener("change", function () {
      add(input.files);
      input.value = "";  // the picker holds them now; picking again adds more
    });
    form.addEventListener("change", function (event) {
      if (event.target.matches("input[data-existing-photo]")) renderPhotos("");
    });
    renderPhotos("");

    form.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest) return;  // the plain form goes on
      event.preventDefault();
      if (busy) return;
      var submitter = event.submitter;
      send(submitter && submitter.name === "action" ? submitter.value : "publish");
    });
  }

  var root = document.getElementById("story-editor");
  if (root) setUp(root);
})();
