// Vexil console enhancements. Everything works without this script (plain forms); it adds
// confirmation dialogs, the project switcher's navigation, the theme toggle, copy buttons,
// and the live banner that says when what this page shows changed elsewhere.
"use strict";
(function () {
  var root = document.documentElement;
  var saved = null;
  try { saved = localStorage.getItem("vexil-theme"); } catch (e) { /* private mode */ }
  if (saved === "light" || saved === "dark") root.setAttribute("data-theme", saved);

  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.querySelector("[data-theme-toggle]");
    if (toggle) toggle.addEventListener("click", function () {
      var dark = root.getAttribute("data-theme") === "dark" ||
        (!root.getAttribute("data-theme") && matchMedia("(prefers-color-scheme: dark)").matches);
      var next = dark ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem("vexil-theme", next); } catch (e) { /* ignore */ }
    });

    // Destructive or protected actions ask first; protected switches also ask why.
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (!confirm(form.getAttribute("data-confirm"))) { ev.preventDefault(); return; }
        var comment = form.querySelector("[data-comment]");
        if (comment) {
          var why = prompt("Comment for the audit log (why this change):", "");
          if (why === null) { ev.preventDefault(); return; }
          comment.value = why;
        }
      });
    });

    var sw = document.querySelector("form[data-navigate] select");
    if (sw) sw.addEventListener("change", function () { location.href = sw.value; });

    document.querySelectorAll("[data-open]").forEach(function (a) {
      a.addEventListener("click", function () {
        var d = document.getElementById(a.getAttribute("data-open"));
        if (d) { d.open = true; var first = d.querySelector("input:not([type=hidden])"); if (first) first.focus(); }
      });
    });

    document.querySelectorAll("[data-copy]").forEach(function (b) {
      b.addEventListener("click", function () {
        var input = document.getElementById(b.getAttribute("data-copy"));
        input.select();
        if (navigator.clipboard) navigator.clipboard.writeText(input.value);
        b.textContent = "Copied";
      });
    });

    var toast = document.querySelector(".toast");
    if (toast) setTimeout(function () { toast.hidden = true; }, 5000);

    // Live: the server tells this page (server-sent events) when the project's flags,
    // configurations or segments change; if what it rendered is no longer current, the
    // banner says so (nothing typed here is touched).
    var banner = document.querySelector("[data-live-banner]");
    var live = document.body.getAttribute("data-live");
    if (banner && live && window.EventSource) {
      var seen = document.body.getAttribute("data-live-version");
      var source = new EventSource(live);
      source.addEventListener("version", function (ev) {
        if (ev.data !== seen) { banner.hidden = false; source.close(); }
      });
    }
  });
})();
