/* "…" menus on comments: a disclosure button (aria-expanded) with a small popover, and menu
   items that open a panel (the reply or report form) under their comment.

   The page holds one menu, one reply form and one report form (data-shared): another member's
   comment has only its button (aria-controls="comment-menu", data-comment, data-actions), and
   opening it moves the shared menu beside the button with that comment's items. An item naming a
   comment (data-comment) moves the panel under that comment's text and fills in the form's
   data-comment-field. Before htmx swaps content holding a moved menu or panel, it goes home.

   Without JS the button is a link (?menu=<id>) and the items are links (?reply_to=, ?report=):
   the server renders the same page with that comment's own menu or form open. Delegated
   listeners, so it keeps working after htmx swaps the comments. */
(function () {
  "use strict";

  function popoverOf(button) {
    return document.getElementById(button.getAttribute("aria-controls"));
  }

  // The shared menu, for the comment BUTTON opens: beside it, with that comment's items, each
  // linking where the no-JS page would (?reply_to=<id>#reply-<id>, ?report=<id>#report-c<id>).
  function fillShared(popover, button) {
    var id = button.dataset.comment;
    var actions = (button.dataset.actions || "").split(" ");
    popover.querySelectorAll("[data-action]").forEach(function (item) {
      var action = item.dataset.action;
      var url = new URL(button.href);
      url.searchParams.delete("menu");
      url.searchParams.set(action === "reply" ? "reply_to" : "report", id);
      url.hash = action === "reply" ? "reply-" + id : "report-c" + id;
      item.href = url.pathname + url.search + url.hash;
      item.dataset.comment = id;
      item.hidden = actions.indexOf(action) < 0;
    });
    button.after(popover);
  }

  function setOpen(button, open) {
    var popover = popoverOf(button);
    if (!popover) return;
    if (open && button.dataset.comment && popover.hasAttribute("data-shared")) fillShared(popover, button);
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
        var first = popoverOf(button).querySelector("a:not([hidden]), button:not([hidden])");
        if (first) first.focus();
      }
      return;
    }
    var opener = event.target.closest("[data-opens]");
    if (opener) {
      var panel = document.getElementById(opener.dataset.opens);
      if (panel && opener.dataset.comment && !placeUnder(panel, opener.dataset.comment)) panel = null;
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

  // A shared panel under comment ID: after its text, before its replies. False when the page
  // has no such comment (the link then opens the form in place, as without JS).
  function placeUnder(panel, id) {
    var body = document.querySelector("#comment-" + id + " > .comment-body");
    var field = panel.querySelector("[data-comment-field]");
    if (!body || !field) return false;
    if (field.value !== id) {
      field.value = id;
      var error = panel.querySelector(".error");
      if (error) error.remove();
    }
    body.after(panel);
    return true;
  }

  function sendHome(panels) {
    var home = document.getElementById("comment-panels");
    panels.forEach(function (panel) {
      panel.hidden = true;
      if (home) home.appendChild(panel);
    });
  }

  // A comment about to be replaced or removed keeps no shared form inside it.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || target.matches("[data-shared], [data-shared] *")) return;
    sendHome(Array.prototype.slice.call(target.querySelectorAll("[data-shared]")));
  });

  document.addEventListener("keydown", function (event) {
    // The button is a link (its no-JS path): Space presses it, as it does a <button>.
    if (event.key === " " && event.target.matches && event.target.matches("a.menu-button")) {
      event.preventDefault();
      event.target.click();
      return;
    }
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
