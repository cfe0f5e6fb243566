// Progressive enhancement for the sign-in pages (every page works without it): a resend
// button rendered with data-countdown="<seconds>" stays disabled and counts down until it
// may be used. The server-rendered text already says when, for browsers without scripts.
"use strict";
document.querySelectorAll("button[data-countdown]").forEach(function (button) {
  var left = parseInt(button.getAttribute("data-countdown"), 10);
  var shown = document.querySelector('[data-countdown-for="' + button.id + '"]');
  var note = document.getElementById(button.id + "-when");
  if (!(left > 0)) return;
  button.disabled = true;
  var timer = setInterval(function () {
    left -= 1;
    if (left > 0) {
      if (shown) shown.textContent = String(left);
      return;
    }
    clearInterval(timer);
    button.disabled = false;
    if (note) note.textContent = "You can ask for a new one now.";
  }, 1000);
});
