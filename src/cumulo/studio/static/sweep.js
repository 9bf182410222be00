/* Cumulo studio: a sweep's chart (uPlot). One objective: each trial's value by trial
   number, the trials stopped early apart, and the best so far as a step line. Several
   objectives: the first metric against the second, the Pareto front joined. */
(function () {
  "use strict";

  var S = window.cumuloStudio, $ = S.$;
  var BLUE = "#0969da", RED = "#cf222e", GREEN = "#1a7f37";

  function dots(label, colour) {
    return { label: label, stroke: colour, fill: colour, paths: function () { return null; },
      points: { show: true, size: 8, fill: colour, stroke: colour },
      value: S.legendValue };
  }

  function line(label, colour, stepped) {
    return { label: label, stroke: colour, width: 2, spanGaps: true,
      paths: stepped ? uPlot.paths.stepped({ align: 1 }) : undefined, points: { show: false },
      value: S.legendValue };
  }

  function byTrial(spec) {
    var maximize = spec.goals[0] === "MAXIMIZE", best = null;
    var xs = [], done = [], stopped = [], bests = [];
    spec.trials.forEach(function (t) {
      var v = t.values[0];
      var ok = v !== null && v !== undefined && isFinite(v);
      xs.push(t.number);
      done.push(ok && !t.stopped ? v : null);
      stopped.push(ok && t.stopped ? v : null);
      if (ok && !t.stopped && (best === null || (maximize ? v > best : v < best))) { best = v; }
      bests.push(best);
    });
    return {
      data: [xs, done, stopped, bests],
      series: [{ label: "trial" }, dots("trial " + spec.metrics[0], BLUE), dots("stopped early", RED),
        line("best so far", GREEN, true)],
      x: "trial", y: spec.metrics[0], xIncrs: [1, 2, 5, 10, 20, 50, 100, 200, 500],
      count: done.concat(stopped).filter(function (v) { return v !== null; }).length
    };
  }

  function front(spec) {
    var rows = spec.trials.filter(function (t) {
      return t.values[0] !== null && t.values[1] !== null && isFinite(t.values[0]) && isFinite(t.values[1]);
    });
    rows.sort(function (a, b) { return a.values[1] - b.values[1] || a.values[0] - b.values[0]; });
    // one x per trial: uPlot joins series on x, so equal x values are nudged apart
    var xs = [], all = [], onFront = [], last = null;
    rows.forEach(function (t) {
      var x = t.values[1];
      if (last !== null && x <= last) { x = last + Math.max(Math.abs(last) * 1e-9, 1e-12); }
      last = x;
      xs.push(x);
      all.push(t.front ? null : t.values[0]);
      onFront.push(t.front ? t.values[0] : null);
    });
    var frontSeries = dots("Pareto front", GREEN);
    frontSeries.paths = undefined;  // the front's points, joined
    frontSeries.spanGaps = true;
    frontSeries.width = 2;
    return {
      data: [xs, all, onFront],
      series: [{ label: spec.metrics[1] }, dots("other trials", BLUE), frontSeries],
      x: spec.metrics[1], y: spec.metrics[0], count: rows.length
    };
  }

  function init() {
    var holder = $("#sweep-chart"), source = $("#sweep-data");
    if (!holder || !source || typeof uPlot === "undefined") { return; }
    var spec = JSON.parse(source.textContent);
    var view = spec.metrics.length > 1 ? front(spec) : byTrial(spec);
    if (!view.count) {
      holder.innerHTML = '<div class="nodata">No trial has logged ' + spec.metrics[0] + " yet</div>";
      holder.setAttribute("data-drawn", "0");
      return;
    }
    var ink = S.ink().text, grid = S.ink().grid;
    var plot = new uPlot({
      width: Math.max(300, holder.clientWidth || 600),
      height: 260,
      series: view.series,
      scales: { x: { time: false } },
      axes: [
        { label: view.x, labelSize: 18, size: 36, stroke: ink, grid: { stroke: grid }, values: S.tickLabels,
          incrs: view.xIncrs },
        { label: view.y, labelSize: 18, size: 64, stroke: ink, grid: { stroke: grid }, values: S.tickLabels }
      ],
      legend: { show: true }
    }, view.data, holder);
    holder.setAttribute("data-drawn", String(view.count));
    window.addEventListener("resize", function () {
      plot.setSize({ width: Math.max(300, holder.clientWidth || 600), height: 260 });
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
