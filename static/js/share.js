/* Share buttons ([data-share], templates/_partials/share_button.html): the phone's share sheet
   (Web Share API) where the browser has one; otherwise (WeChat's browser, desktops) the link is
   copied to the clipboard, or, where even that is refused, shown selected for a long-press copy. */
(function () {
  "use strict";
  if (window.cheyouShare) return; // the partial may load this file more than once on a page
  window.cheyouShare = true;

  function toast(message) {
    var el = document.getElementById("toast");
    if (!el || !message) return;
    el.textContent = message;
    el.hidden = false;
    clearTimeout(el._timer);
    el._timer = setTimeout(function () { el.hidden = true; }, 4000);
  }

  // Old browsers: select the read-only field and ask for a copy; true when the browser did it.
  function copyBySelection(box) {
    var field = box.querySelector("[data-share-field]");
    if (!field) return false;
    field.hidden = false;
    field.focus();
    field.select();
    try {
      field.setSelectionRange(0, field.value.length);
      return document.execCommand("copy");
    } catch (error) {
      return false;
    }
  }

  function copy(box) {
    var url = box.dataset.url;
    function fallback() {
      toast(copyBySelection(box) ? box.dataset.msgCopied : box.dataset.msgManual);
    }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(url).then(function () { toast(box.dataset.msgCopied); }, fallback);
    } else {
      fallback();
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-share-button]");
    var box = button && button.closest("[data-share]");
    if (!box) return;
    if (typeof navigator.share !== "function") {
      copy(box);
      return;
    }
    var data = { title: box.dataset.title, text: box.dataset.text, url: box.dataset.url };
    Promise.resolve()
      .then(function () { return navigator.share(data); })
      .catch(function (error) {
        if (error && error.name === "AbortError") return; // the member closed the share sheet
        copy(box);
      });
  });
})();
