// Live progress for a sending edition: the only script on the staff pages.
// Without it the page is complete; this only refreshes the counts in place.
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box || !window.fetch) { return; }
  var url = box.getAttribute("data-url");
  function update() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        Object.keys(data).forEach(function (key) {
          var node = box.querySelector('[data-count="' + key + '"]');
          if (node) { node.textContent = String(data[key]); }
        });
        if (data.state === "sending") { window.setTimeout(update, 3000); }
      })
      .catch(function () { window.setTimeout(update, 10000); });
  }
  window.setTimeout(update, 3000);
}());
