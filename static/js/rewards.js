/* The redeem confirmation as a bottom sheet: the redeem link (which, without JavaScript, leads
   to the server's confirmation page) opens the <dialog> holding the same facts and the real
   form instead; Cancel, Esc or a tap on the backdrop close it, nothing spent. Delegated on the
   document, so it keeps working after htmx swaps the redeem box. */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-open-sheet]");
    if (opener) {
      var sheet = document.getElementById(opener.dataset.openSheet);
      if (sheet && typeof sheet.showModal === "function") {
        event.preventDefault();
        sheet.showModal();
        var confirm = sheet.querySelector("button[type=submit]");
        if (confirm) confirm.focus();
      }
      return;
    }
    var closer = event.target.closest("[data-close-sheet]");
    var open = closer && closer.closest("dialog[open]");
    if (open) {
      event.preventDefault();
      open.close();
      return;
    }
    // A tap on the backdrop lands on the dialog itself, outside its body.
    if (event.target.matches && event.target.matches("dialog.sheet[open]")) {
      event.target.close();
    }
  });
})();

/* Filter chips that scroll sideways: the fade at the right edge (CSS) says there is more; it
   goes once the row is scrolled to its end, or when everything fits. */
(function () {
  "use strict";

  function update(row) {
    var more = row.scrollLeft + row.clientWidth < row.scrollWidth - 2;
    row.classList.toggle("no-more", !more);
  }

  document.querySelectorAll("[data-scroll-fade]").forEach(function (row) {
    update(row);
    row.addEventListener("scroll", function () { update(row); }, { passive: true });
    window.addEventListener("resize", function () { update(row); });
    // Keep the chosen chip in view (it may sit past the edge of a narrow phone).
    var active = row.querySelector(".chip.active");
    if (active && active.offsetLeft + active.offsetWidth > row.clientWidth) {
      row.scrollLeft = active.offsetLeft - 16;
      update(row);
    }
  });
})();
