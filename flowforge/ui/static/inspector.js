// FlowForge inspector: reload a page whose job (or jobs) changed while running.
// The server puts the URL to poll and its current answer on <body>; nothing
// else runs on the page.
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-poll");
  if (!url) {
    return;
  }
  var state = body.getAttribute("data-poll-state");
  var every = 2000;

  function schedule() {
    window.setTimeout(check, every);
  }

  function check() {
    if (document.hidden) {
      schedule();
      return;
    }
    fetch(url, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.text() : state;
      })
      .then(function (answer) {
        if (answer !== state) {
          window.location.reload();
        } else {
          schedule();
        }
      })
      .catch(schedule);
  }

  body.classList.add("live");
  schedule();
})();
