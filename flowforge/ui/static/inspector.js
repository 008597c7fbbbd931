// FlowForge inspector: reload a page whose job (or jobs) changed while running.
// The server puts the URL to poll and its current answer on <body>; nothing
// else runs on the page. The sections a reader opened or closed (the
// <details data-key="..."> elements) stay so across the reload.
(function () {
  "use strict";
  var body = document.body;
  var remembered = "flowforge-open:" + window.location.pathname;

  function sections() {
    return Array.prototype.slice.call(document.querySelectorAll("details[data-key]"));
  }

  function remember() {
    var open = {};
    sections().forEach(function (section) {
      open[section.getAttribute("data-key")] = section.open;
    });
    try {
      window.sessionStorage.setItem(remembered, JSON.stringify(open));
    } catch (ignored) {
      // no storage (a private window): the page reloads with its defaults
    }
  }

  function restore() {
    var saved = null;
    try {
      saved = JSON.parse(window.sessionStorage.getItem(remembered) || "null");
      window.sessionStorage.removeItem(remembered);
    } catch (ignored) {
      return;
    }
    if (!saved) {
      return;
    }
    sections().forEach(function (section) {
      var key = section.getAttribute("data-key");
      if (Object.prototype.hasOwnProperty.call(saved, key)) {
        section.open = saved[key] === true;
      }
    });
  }

  restore();
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
          remember();
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
