/* SMS code steps: the "send the code again" button counts down the server's 60-second wait
   (data-resend-in) and stays disabled until it ends. Runs on page load and on every htmx swap. */
(function () {
  "use strict";

  function tick(button) {
    if (!button.isConnected) return;
    var left = Math.ceil((Number(button.dataset.deadline) - Date.now()) / 1000);
    if (left > 0) {
      button.disabled = true;
      button.textContent = button.dataset.labelWait.replace("__S__", String(left));
      setTimeout(function () { tick(button); }, 250);
    } else {
      button.disabled = false;
      button.textContent = button.dataset.label;
    }
  }

  function start(root) {
    if (!root || !root.querySelectorAll) return;
    root.querySelectorAll("[data-resend-in]").forEach(function (button) {
      if (button.dataset.deadline) return; // already counting
      var wait = parseInt(button.dataset.resendIn, 10) || 0;
      button.dataset.deadline = String(Date.now() + wait * 1000);
      button.dataset.label = button.textContent;
      tick(button);
    });
  }

  // afterSwap comes first (htmx:load waits for the settle): no moment with the button enabled.
  document.addEventListener("htmx:afterSwap", function () { start(document); });
  document.addEventListener("htmx:load", function (event) { start(event.target); });
  start(document);
})();
