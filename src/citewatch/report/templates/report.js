/* citewatch report: sortable, filterable tables. Vanilla JS, no network, no eval.
   Filters and sort order can be preset from the address, e.g. ?q=word&verdict=dead&role=source&sort=-line
   (or the same after #): q (or filter) matches row text, sort takes a column key, "-" for descending. */
(function () {
  "use strict";
  var search = new URLSearchParams(window.location.search);
  var hash = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  function param(name) {
    return hash.get(name) || search.get(name) || "";
  }
  function sortKey(cell, numeric) {
    var raw = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent.trim();
    if (!numeric) return raw.toLowerCase();
    var n = parseFloat(raw);
    return isNaN(n) ? null : n;
  }
  function compare(a, b) {
    if (a === b) return 0;
    if (a === null || a === "") return 1;
    if (b === null || b === "") return -1;
    return a < b ? -1 : 1;
  }
  function setup(wrap) {
    var table = wrap.querySelector("table");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var texts = rows.map(function (r) { return r.textContent.toLowerCase(); });
    var q = wrap.querySelector("[data-cw-q]");
    var selects = Array.prototype.slice.call(wrap.querySelectorAll("select[data-cw-field]"));
    var count = wrap.querySelector("[data-cw-count]");
    function apply() {
      var terms = q ? q.value.toLowerCase().split(/\s+/).filter(Boolean) : [];
      var shown = 0;
      rows.forEach(function (row, i) {
        var ok = terms.every(function (t) { return texts[i].indexOf(t) !== -1; });
        selects.forEach(function (s) {
          if (ok && s.value && row.getAttribute("data-" + s.getAttribute("data-cw-field")) !== s.value) ok = false;
        });
        row.hidden = !ok;
        if (ok) shown += 1;
      });
      if (count) count.textContent = shown + " of " + rows.length + " shown";
      wrap.classList.toggle("cw-empty", shown === 0);
    }
    function remember() {
      var state = new URLSearchParams();
      if (q && q.value) state.set("q", q.value);
      selects.forEach(function (s) { if (s.value) state.set(s.getAttribute("data-cw-field"), s.value); });
      var text = state.toString();
      window.history.replaceState(null, "", text ? "#" + text : window.location.pathname + window.location.search);
    }
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, index) {
      if (!th.hasAttribute("data-sort")) return;
      th.tabIndex = 0;
      function sortBy(direction) {
        var numeric = th.getAttribute("data-sort") === "num";
        var ascending = typeof direction === "boolean" ? direction : th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var order = rows.map(function (row, i) { return [sortKey(row.cells[index], numeric), i, row]; });
        order.sort(function (a, b) {
          var c = compare(a[0], b[0]);
          if (c === 0) return a[1] - b[1];
          return ascending || a[0] === null || b[0] === null || a[0] === "" || b[0] === "" ? c : -c;
        });
        order.forEach(function (item) { body.appendChild(item[2]); });
      }
      th.addEventListener("click", function () { sortBy(); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(); }
      });
      var wanted = param("sort");
      if (wanted && wanted.replace(/^-/, "") === th.getAttribute("data-key")) sortBy(wanted.charAt(0) !== "-");
    });
    if (q) {
      q.value = param("q") || param("filter");
      q.addEventListener("input", function () { apply(); remember(); });
    }
    selects.forEach(function (s) {
      var wanted = param(s.getAttribute("data-cw-field"));
      if (wanted) s.value = wanted;
      s.addEventListener("change", function () { apply(); remember(); });
    });
    apply();
    wrap.classList.add("cw-ready");
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-cw-table]"), setup);
})();
