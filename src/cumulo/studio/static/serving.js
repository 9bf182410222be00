/* Cumulo studio: endpoint pages. Request charts (uPlot), live replica logs, copy buttons,
   snippet tabs and the test form's sample bodies. Pages are rendered on the server. */
(function () {
  "use strict";

  var REFRESH_MS = 15000; // charts re-read the stored per-minute metrics
  var LOG_MS = 2000; // replica logs are read again this often while the page is visible
  var PLOT_HEIGHT = 190; // the legend goes below it

  var $ = window.cumuloStudio.$, $$ = window.cumuloStudio.$$, getJSON = window.cumuloStudio.getJSON;

  // ------------------------------------------------------------ request charts
  function chartOptions(el, series, bars) {
    var ink = window.cumuloStudio.ink();  // the theme's, as the other charts take them
    var opts = {
      width: Math.max(200, el.clientWidth || 400),
      height: PLOT_HEIGHT,
      legend: { show: true },
      scales: { x: { time: true } },
      series: [{}].concat(series),
      axes: [{ stroke: ink.text, grid: { stroke: ink.grid } },
        { stroke: ink.text, grid: { stroke: ink.grid }, size: 50 }],
      cursor: { drag: { x: false, y: false } }
    };
    if (bars) { opts.scales.y = { range: function (u, lo, hi) { return [0, Math.max(1, hi)]; } }; }
    return opts;
  }

  function line(label, color, dash) {
    return { label: label, stroke: color, width: 1.5, dash: dash, spanGaps: false,
      points: { show: true, size: 4, fill: color }, value: function (u, v) { return v === null || v === undefined ? "—" : v.toFixed(2); } };
  }

  function bar(label, color, fill) {
    var paths = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.8, 20] }) : undefined;
    return { label: label, stroke: color, fill: fill, width: 1, paths: paths, points: { show: false } };
  }

  // Minutes without any count draw no bar (not a flat line along the axis).
  function gaps(counts) { return counts.map(function (n) { return n ? n : null; }); }

  function initEndpointCharts() {
    var card = $("#endpoint-metrics");
    if (!card || typeof uPlot === "undefined") { return; }
    var depSel = $("#metrics-deployment"), minSel = $("#metrics-minutes"), total = $("#metrics-total");
    var latency = { el: $("#latency-chart .plot"), holder: $("#latency-chart"), plot: null };
    var traffic = { el: $("#traffic-chart .plot"), holder: $("#traffic-chart"), plot: null };
    var busy = false;

    function draw(chart, opts, data) {
      if (chart.plot) { chart.plot.destroy(); chart.plot = null; }
      chart.el.innerHTML = "";
      chart.plot = new uPlot(opts, data, chart.el);
      chart.el._uplot = chart.plot;
    }

    function load() {
      if (busy) { return Promise.resolve(); }
      busy = true;
      var url = card.getAttribute("data-url") + "?deployment=" + encodeURIComponent(depSel.value) +
        "&minutes=" + encodeURIComponent(minSel.value);
      return getJSON(url).then(function (d) {
        busy = false;
        draw(latency, chartOptions(latency.el, [line("p50", "#0969da"), line("p95", "#bf8700", [6, 3]),
          line("p99", "#cf222e", [2, 3])]), [d.x, d.p50, d.p95, d.p99]);
        draw(traffic, chartOptions(traffic.el, [bar("requests", "#1a7f37", "rgba(26,127,55,.35)"),
          bar("errors", "#cf222e", "rgba(207,34,46,.6)")], true), [d.x, gaps(d.requests), gaps(d.errors)]);
        var drawn = d.p50.filter(function (v) { return v !== null; }).length;
        latency.holder.setAttribute("data-drawn", String(drawn));
        traffic.holder.setAttribute("data-drawn", String(d.total));
        total.textContent = d.total.toLocaleString() + (d.total === 1 ? " request, " : " requests, ") +
          d.total_errors.toLocaleString() + (d.total_errors === 1 ? " error" : " errors") + " in this window";
      }).catch(function (err) {
        busy = false;
        total.textContent = "Could not load the metrics: " + err.message;
      });
    }

    depSel.addEventListener("change", load);
    minSel.addEventListener("change", load);
    window.addEventListener("resize", function () {
      [latency, traffic].forEach(function (c) {
        if (c.plot) { c.plot.setSize({ width: c.el.clientWidth, height: PLOT_HEIGHT }); }
      });
    });
    // A test request shows up in the charts at once: the server stores counts before reading them.
    document.body.addEventListener("htmx:afterSwap", function (e) {
      if (e.target && e.target.id === "test-result") { load(); }
    });
    setInterval(function () { if (!document.hidden) { load(); } }, REFRESH_MS);
    load();
  }

  // ---------------------------------------------------------------- live logs
  function initEndpointLogs() {
    var pre = $("#endpoint-log");
    if (!pre) { return; }
    var sel = $("#log-deployment"), state = $("#endpoint-log-state"), last = null, timer = null;

    function poll() {
      timer = null;
      var url = pre.getAttribute("data-url") + "?deployment=" + encodeURIComponent(sel.value);
      getJSON(url).then(function (d) {
        if (d.text !== last) {
          var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
          pre.textContent = d.text || "No log lines yet.";
          if (atEnd || last === null) { pre.scrollTop = pre.scrollHeight; }
          last = d.text;
        }
        state.textContent = "● live";
        state.className = "live";
        pre.setAttribute("data-read", String(d.at));
      }).catch(function (err) {
        state.textContent = "Could not read the logs: " + err.message;
        state.className = "error";
      }).then(function () {
        timer = setTimeout(poll, document.hidden ? LOG_MS * 5 : LOG_MS);
      });
    }

    sel.addEventListener("change", function () {
      last = null;
      if (timer) { clearTimeout(timer); }
      poll();
    });
    poll();
  }

  // ------------------------------------------------------- snippets and copying
  function initSnippets() {
    $$(".snippet-tabs a").forEach(function (tab) {
      tab.addEventListener("click", function (e) {
        e.preventDefault();
        var kind = tab.getAttribute("data-snippet");
        $$(".snippet-tabs a").forEach(function (t) { t.classList.toggle("on", t === tab); });
        $$(".snippet").forEach(function (s) { s.classList.toggle("on", s.getAttribute("data-snippet") === kind); });
      });
    });
  }

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function initCopy() {
    document.addEventListener("click", function (e) {
      var button = e.target.closest && e.target.closest("[data-copy]");
      if (!button) { return; }
      var source = $(button.getAttribute("data-copy"));
      if (!source) { return; }
      var label = button.textContent;
      function done(text) {
        button.textContent = text;
        setTimeout(function () { button.textContent = label; }, 1500);
      }
      var text = source.textContent;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { done("Copied"); }, function () {
          selectText(source);
          done("Press Ctrl+C");
        });
      } else {
        selectText(source);
        done("Press Ctrl+C");
      }
    });
  }

  // ---------------------------------------------------------------- test form
  function initTestForm() {
    var select = $("#test-deployment"), body = $("#test-body");
    if (!select || !body) { return; }
    var shown = body.value;
    select.addEventListener("change", function () {
      // Offer the chosen deployment's sample, unless the body was edited.
      if (body.value !== shown) { return; }
      var option = select.options[select.selectedIndex];
      var sample = option && option.getAttribute("data-sample");
      if (sample) { body.value = sample; shown = sample; }
    });
  }

  function init() {
    initEndpointCharts();
    initEndpointLogs();
    initSnippets();
    initCopy();
    initTestForm();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
