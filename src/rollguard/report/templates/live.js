// Re-read the page every few seconds and swap its main part in place, keeping what the reader opened
// and where they scrolled. Read-only: nothing here sends anything but a GET of this same page.
(function () {
  var every = REFRESH_MS;
  function refresh() {
    fetch(window.location.href, {cache: "no-store"}).then(function (r) { return r.text(); }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.getElementById("main"), main = document.getElementById("main");
      if (!fresh || !main) return;
      var open = {}, closed = {};
      main.querySelectorAll("details[id]").forEach(function (d) { (d.open ? open : closed)[d.id] = true; });
      fresh.querySelectorAll("details[id]").forEach(function (d) {
        if (open[d.id]) d.open = true; else if (closed[d.id]) d.open = false;
      });
      main.replaceWith(fresh);
      var totals = doc.querySelector("header .totals"), mine = document.querySelector("header .totals");
      if (totals && mine) mine.replaceWith(totals);
    }).catch(function () {}).then(function () { setTimeout(refresh, every); });
  }
  setTimeout(refresh, every);
})();
