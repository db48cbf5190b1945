/* "…" menus on comments: a disclosure button (aria-expanded) with a small popover, and menu
   items that open a panel (the reply or report form) under their comment.

   Without JS the button submits a GET form (?menu=<id>) and the items are links (?reply_to=,
   ?report=): the server renders the same page with the menu or form open. Delegated listeners,
   so it keeps working after htmx swaps the comments. */
(function () {
  "use strict";

  function popoverOf(button) {
    return document.getElementById(button.getAttribute("aria-controls"));
  }

  function setOpen(button, open) {
    var popover = popoverOf(button);
    if (!popover) return;
    button.setAttribute("aria-expanded", open ? "true" : "false");
    popover.hidden = !open;
  }

  function closeAll(except) {
    document.querySelectorAll(".menu-button[aria-expanded='true']").forEach(function (button) {
      if (button !== except) setOpen(button, false);
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest(".menu-button");
    if (button) {
      event.preventDefault();
      var open = button.getAttribute("aria-expanded") !== "true";
      closeAll(button);
      setOpen(button, open);
      if (open) {
        var first = popoverOf(button).querySelector("a, button");
        if (first) first.focus();
      }
      return;
    }
    var opener = event.target.closest("[data-opens]");
    if (opener) {
      var panel = document.getElementById(opener.dataset.opens);
      if (panel) {
        event.preventDefault();
        var menu = opener.closest(".more-menu");
        var toggle = menu && menu.querySelector(".menu-button");
        if (toggle) setOpen(toggle, false);
        var comment = panel.closest(".comment");
        if (comment) {
          comment.querySelectorAll(".comment-panel").forEach(function (other) {
            if (other !== panel) other.hidden = true;
          });
        }
        panel.hidden = false;
        var field = panel.querySelector("textarea, select, input:not([type=hidden])");
        if (field) field.focus();
      }
      return;
    }
    if (!event.target.closest(".menu-popover")) closeAll(null);
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = document.querySelector(".menu-button[aria-expanded='true']");
    if (open) {
      setOpen(open, false);
      open.focus();
    }
  });

  // A panel's "Cancel" closes it again.
  document.addEventListener("click", function (event) {
    var closer = event.target.closest("[data-closes]");
    if (!closer) return;
    var panel = document.getElementById(closer.dataset.closes);
    if (panel) {
      event.preventDefault();
      panel.hidden = true;
    }
  });
})();
