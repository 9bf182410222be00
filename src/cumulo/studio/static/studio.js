/* Cumulo studio: charts (uPlot), live logs, run selection and parallel coordinates.
   Pages are rendered on the server; this file only adds what needs the browser. */
(function () {
  "use strict";

  var PALETTE = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#0a7ea4", "#d1242f",
    "#6639ba", "#953800", "#116329", "#e16f24", "#5a6b7b"];

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) { throw new Error(body.message || ("HTTP " + r.status)); }
          return body;
        });
      });
  }

  // charts.js, compare.js, sweep.js and serving.js (loaded after this file) use the same helpers.
  window.cumuloStudio = { $: $, $$: $$, getJSON: getJSON, formatValue: formatValue, legendValue: legendValue,
    tickLabels: tickLabels, smoothed: smoothed, ink: ink, allNumbers: allNumbers, categoryTicks: categoryTicks };

  function runActive() {
    var head = $("#run-header");
    if (!head) { return false; }
    var s = head.getAttribute("data-status");
    return ["Completed", "Failed", "Canceled"].indexOf(s) < 0;
  }

  // ------------------------------------------------------------ controls
  function controls() {
    var axis = $("#chart-axis"), smooth = $("#chart-smooth"), log = $("#chart-log");
    return {
      axis: axis ? axis.value : "step",
      smooth: smooth ? parseFloat(smooth.value) : 0,
      log: log ? log.checked : false
    };
  }

  // Exponential moving average, debiased like TensorBoard's smoothing.
  function smoothed(ys, weight) {
    if (!weight) { return ys; }
    var out = new Array(ys.length), last = 0, n = 0;
    for (var i = 0; i < ys.length; i++) {
      var v = ys[i];
      if (v === null || !isFinite(v)) { out[i] = null; continue; }
      last = last * weight + (1 - weight) * v;
      n++;
      out[i] = last / (1 - Math.pow(weight, n));
    }
    return out;
  }

  // "1.50e-4" -> "1.5e-4": scientific notation without trailing zeros.
  // A value in a chart's legend or tooltip: "—" where the series has none.
  function legendValue(u, v) { return v === null || v === undefined ? "—" : formatValue(v); }

  // Whether every value, nulls aside, reads as a number: what makes an axis numeric.
  function allNumbers(values) { return values.every(function (v) { return v === null || (v !== "" && isFinite(Number(v))); }); }

  // Tick labels of an axis of categories placed at 0, 1, 2...: their names, nothing between.
  function categoryTicks(cats) {
    return function (u, splits) { return splits.map(function (v) { return v === Math.round(v) && cats[v] !== undefined ? cats[v] : ""; }); };
  }

  function trimExp(text) { return text.replace(/\.?0+e/, "e").replace("e+", "e"); }

  function formatValue(v) {
    if (v === null || v === undefined) { return "NaN"; }
    return Math.abs(v) >= 1e6 || (v !== 0 && Math.abs(v) < 1e-4) ? trimExp(v.toExponential(5)) : String(+v.toPrecision(6));
  }

  // Tick labels for uPlot's axis `values` (uPlot places the ticks; this only writes them):
  // enough significant digits to tell neighbouring ticks apart, scientific for tiny or huge.
  function tickLabels(u, splits, axisIdx, space, incr) {
    var top = 0;
    splits.forEach(function (v) { if (v !== null && isFinite(v)) { top = Math.max(top, Math.abs(v)); } });
    var logScale = u.scales[u.axes[axisIdx].scale].distr === 3;
    return splits.map(function (v) {
      if (v === null || !isFinite(v)) { return ""; }
      if (v === 0) { return "0"; }
      if (logScale) {
        var a = Math.abs(v);
        return a < 1e-3 || a >= 1e5 ? trimExp(v.toExponential(2)) : String(+v.toPrecision(3));
      }
      if (top < 1e-3 || top >= 1e6) {
        var digits = Math.ceil(Math.log10(Math.abs(v) / incr) + 1e-9) + 1;
        return trimExp(v.toExponential(Math.min(6, Math.max(1, digits)) - 1));
      }
      var decimals = 0;  // as many as the step between ticks has (0.0025 needs 4)
      while (decimals < 10 && Math.abs(Math.round(incr * Math.pow(10, decimals)) - incr * Math.pow(10, decimals)) > 1e-6 * incr * Math.pow(10, decimals)) { decimals++; }
      return v.toFixed(decimals);
    });
  }

  function prepare(x, ys, c) {
    var xs = c.axis === "timestamp" ? x.map(function (v) { return v / 1000; }) : x.slice();
    return ys.map(function (y) {
      return c.log ? y.map(function (v) { return v !== null && v > 0 ? v : null; }) : y;
    }).reduce(function (acc, y) { acc.push(y); return acc; }, [xs]);
  }

  function plotOptions(el, series, c, onZoom) {
    var width = Math.max(200, el.clientWidth || 400);
    var height = Math.max(120, el.clientHeight || 220);
    return {
      width: width,
      height: height,
      legend: { show: series.length > 2 },
      scales: { x: { time: c.axis === "timestamp" }, y: { distr: c.log ? 3 : 1 } },
      series: [{}].concat(series),
      axes: [{ stroke: ink().text, grid: { stroke: ink().grid }, values: c.axis === "timestamp" ? undefined : tickLabels },
        { stroke: ink().text, grid: { stroke: ink().grid }, size: 64, values: tickLabels }],
      cursor: { drag: { x: true, y: false, setScale: false }, bind: { dblclick: function () { return function () { return null; }; } } },
      hooks: {
        setSelect: [function (u) {
          if (u.select.width < 4) { return; }
          var lo = u.posToVal(u.select.left, "x"), hi = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          onZoom(lo, hi);
        }]
      }
    };
  }

  function lineSeries(label, color, dim, few) {
    return { label: label, stroke: color, width: dim ? 1 : 1.5, alpha: dim ? 0.25 : 1, spanGaps: false,
      points: { show: !!few, size: 6, fill: color }, value: legendValue };
  }

  // ------------------------------------------------------ one run, one metric
  function RunChart(card) {
    this.card = card;
    this.el = $(".plot", card);
    this.info = $(".chart-info", card);
    this.key = card.getAttribute("data-key");
    this.url = card.getAttribute("data-url");
    // The System tab: every chart spans the run's time and moves its cursor with the others.
    var group = card.closest("[data-span]");
    this.span = group ? JSON.parse(group.getAttribute("data-span")) : null;
    this.sync = group ? group.getAttribute("data-sync") : null;
    this.range = null; // [start, end] while zoomed
    this.data = null;
    this.plot = null;
    this.loading = false;
  }
  RunChart.prototype.query = function () {
    var c = controls(), width = Math.max(200, this.el.clientWidth || 400);
    var q = "?key=" + encodeURIComponent(this.key) + "&axis=" + c.axis +
      "&points=" + Math.min(4000, Math.max(200, Math.round(width * 2)));
    if (this.range) {
      q += "&start=" + Math.floor(this.range[0]) + "&end=" + Math.ceil(this.range[1]);
    }
    return this.url + q;
  };
  RunChart.prototype.load = function () {
    var self = this;
    if (self.loading) { return Promise.resolve(); }
    self.loading = true;
    return getJSON(self.query()).then(function (d) {
      self.loading = false;
      self.data = d;
      self.draw();
    }).catch(function (err) {
      self.loading = false;
      self.el.innerHTML = '<div class="nodata"></div>';
      self.el.firstChild.textContent = "Could not load: " + err.message;
    });
  };
  RunChart.prototype.draw = function () {
    var self = this, d = self.data, c = controls();
    if (!d) { return; }
    if (self.plot) { self.plot.destroy(); self.plot = null; }
    self.el.innerHTML = "";
    if (!d.x.length) {
      self.el.innerHTML = '<div class="nodata">No points</div>';
      return;
    }
    if (d.count === 1 && !self.range) {  // one value: say it, a chart of one dot says less
      var at = c.axis === "timestamp" ? new Date(d.x[0]).toLocaleString() : "step " + d.x[0];
      self.el.innerHTML = '<div class="single-value"><b></b><span class="muted"></span></div>';
      $("b", self.el).textContent = formatValue(d.y[0]);
      $("span", self.el).textContent = at;
      self.info.textContent = "1 point";
      self.card.setAttribute("data-drawn", "1");
      return;
    }
    var few = d.x.length <= 60;
    var ys = [d.y], series = [lineSeries(self.key, PALETTE[0], c.smooth > 0, few)];
    if (c.smooth > 0) {
      ys.push(smoothed(d.y, c.smooth));
      series.push(lineSeries(self.key + " (smoothed)", PALETTE[0], false));
    }
    var opts = plotOptions(self.el, series, c, function (lo, hi) {
      if (c.axis === "timestamp") { lo *= 1000; hi *= 1000; }
      self.range = [lo, hi];
      self.load();
    });
    if (self.span && c.axis === "timestamp") {
      if (!self.range) {
        var span = [self.span[0] / 1000, (self.span[1] || Date.now()) / 1000];
        opts.scales.x.range = function () { return span; };
      }
      opts.cursor.sync = { key: self.sync };
    }
    self.plot = new uPlot(opts, prepare(d.x, ys, c), self.el);
    self.el._uplot = self.plot;
    self.plot.over.addEventListener("dblclick", function () {
      if (self.range) { self.range = null; self.load(); }
    });
    self.info.textContent = d.count.toLocaleString() + (d.count === 1 ? " point" : " points") +
      (d.downsampled ? ", " + d.x.length.toLocaleString() + " drawn" : "") + (self.range ? " · zoomed" : "");
    self.card.setAttribute("data-drawn", String(d.x.length));
  };
  RunChart.prototype.resize = function () {
    if (this.plot) { this.plot.setSize({ width: this.el.clientWidth, height: this.el.clientHeight || 220 }); }
  };

  function initRunCharts() {
    var cards = $$(".charts .chart");
    if (!cards.length) { return; }
    var charts = cards.map(function (card) { return new RunChart(card); });
    var visible = new Set();
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        var chart = charts[cards.indexOf(e.target)];
        if (e.isIntersecting) {
          visible.add(chart);
          if (!chart.data) { chart.load(); }
        } else {
          visible.delete(chart);
        }
      });
    }, { rootMargin: "300px" });
    cards.forEach(function (card) { observer.observe(card); });
    bindControls(function (what) {
      charts.forEach(function (ch) {
        if (!ch.data) { return; }
        if (what === "axis") { ch.range = null; ch.load(); } else { ch.draw(); }
      });
    });
    var filter = $("#metric-filter");
    if (filter) {
      filter.addEventListener("input", function () {
        var text = filter.value.toLowerCase();
        cards.forEach(function (card) {
          card.style.display = card.getAttribute("data-key").toLowerCase().indexOf(text) >= 0 ? "" : "none";
        });
      });
    }
    window.addEventListener("resize", function () { charts.forEach(function (ch) { ch.resize(); }); });
    window.addEventListener("cumulo:theme", function () { charts.forEach(function (ch) { ch.draw(); }); });
    if (cards[0].getAttribute("data-live") === "true") {
      var timer = setInterval(function () {
        if (!runActive()) { clearInterval(timer); }
        visible.forEach(function (ch) { if (!ch.range) { ch.load(); } });
      }, 5000);
    }
  }

  function bindControls(onChange) {
    var axis = $("#chart-axis"), smooth = $("#chart-smooth"), log = $("#chart-log"), out = $("#chart-smooth-value");
    if (axis) { axis.addEventListener("change", function () { onChange("axis"); }); }
    if (log) { log.addEventListener("change", function () { onChange("log"); }); }
    if (smooth) {
      smooth.addEventListener("input", function () {
        if (out) { out.textContent = smooth.value; }
        onChange("smooth");
      });
    }
  }

  // ------------------------------------------------- several runs, one metric
  function initOverlay() {
    var card = $("#overlay");
    if (!card) { return; }
    var el = $(".plot", card), plot = null, data = null, range = null;
    var runs = card.getAttribute("data-runs").split(",");
    var names = JSON.parse(card.getAttribute("data-names"));
    var colours = JSON.parse(card.getAttribute("data-colours") || "[]");  // as in the runs table
    function load() {
      var c = controls();
      var q = card.getAttribute("data-url") + "?key=" + encodeURIComponent(card.getAttribute("data-key")) +
        "&axis=" + c.axis + "&points=1000" + runs.map(function (r) { return "&runs=" + r; }).join("");
      if (range) { q += "&start=" + Math.floor(range[0]) + "&end=" + Math.ceil(range[1]); }
      return getJSON(q).then(function (d) { data = d; draw(); });
    }
    function draw() {
      var c = controls();
      if (plot) { plot.destroy(); plot = null; }
      el.innerHTML = "";
      var tables = data.series.map(function (s) {
        var x = c.axis === "timestamp" ? s.x.map(function (v) { return v / 1000; }) : s.x;
        var y = smoothed(s.y, c.smooth);
        if (c.log) { y = y.map(function (v) { return v !== null && v > 0 ? v : null; }); }
        return [x, y];
      }).filter(function (t) { return t[0].length > 0; });
      if (!tables.length) { el.innerHTML = '<div class="nodata">No points</div>'; return; }
      var joined = uPlot.join(tables);
      var series = data.series.filter(function (s) { return s.x.length > 0; }).map(function (s) {
        var i = runs.indexOf(s.run_id);
        return lineSeries(names[i] || s.run_id, colours[i] || PALETTE[i % PALETTE.length], false, s.x.length <= 60);
      });
      var opts = plotOptions(el, series, c, function (lo, hi) {
        if (c.axis === "timestamp") { lo *= 1000; hi *= 1000; }
        range = [lo, hi];
        load();
      });
      opts.legend = { show: true };
      opts.height = 300;
      series.forEach(function (s) { s.spanGaps = true; });
      plot = new uPlot(opts, joined, el);
      el._uplot = plot;
      plot.over.addEventListener("dblclick", function () { if (range) { range = null; load(); } });
      card.setAttribute("data-drawn", String(series.length));
    }
    bindControls(function (what) {
      if (!data) { return; }
      if (what === "axis") { range = null; load(); } else { draw(); }
    });
    load().catch(function (err) { el.textContent = "Could not load: " + err.message; });
  }

  // ------------------------------------------------------ parallel coordinates
  function initParallel() {
    var holder = $("#parallel"), source = $("#parallel-data");
    if (!holder || !source) { return; }
    var spec = JSON.parse(source.textContent);
    var axes = spec.axes, lines = spec.lines;
    if (!axes.length || !lines.length) { holder.innerHTML = '<p class="muted">Nothing to draw.</p>'; return; }
    var W = Math.max(400, holder.clientWidth), H = holder.clientHeight || 280, top = 30, bottom = 24;
    var left = 60, right = 60, step = axes.length > 1 ? (W - left - right) / (axes.length - 1) : 0;
    var NS = "http://www.w3.org/2000/svg";
    function node(name, attrs, parent) {
      var n = document.createElementNS(NS, name);
      Object.keys(attrs).forEach(function (k) { n.setAttribute(k, attrs[k]); });
      if (parent) { parent.appendChild(n); }
      return n;
    }
    var scales = axes.map(function (axis, i) {
      var values = lines.map(function (l) { return l.values[i]; }).filter(function (v) { return v !== null && v !== undefined; });
      var numeric = values.length > 0 && allNumbers(values);
      if (numeric) {
        var nums = values.map(Number), lo = Math.min.apply(null, nums), hi = Math.max.apply(null, nums);
        return { numeric: true, lo: lo, hi: hi, pos: function (v) {
          if (v === null || v === undefined) { return null; }
          return hi === lo ? 0.5 : (Number(v) - lo) / (hi - lo);
        } };
      }
      var cats = Array.from(new Set(values.map(String))).sort();
      return { numeric: false, cats: cats, pos: function (v) {
        if (v === null || v === undefined) { return null; }
        return cats.length === 1 ? 0.5 : cats.indexOf(String(v)) / (cats.length - 1);
      } };
    });
    var svg = node("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H }, null);
    var metricAxis = axes.length - 1, hasMetric = axes[metricAxis].kind === "metric";
    function y(p) { return top + (1 - p) * (H - top - bottom); }
    lines.forEach(function (line) {
      var pts = [];
      axes.forEach(function (a, i) {
        var p = scales[i].pos(line.values[i]);
        if (p !== null) { pts.push((left + i * step) + "," + y(p)); }
      });
      var colour = PALETTE[0];
      if (hasMetric) {
        var p = scales[metricAxis].pos(line.values[metricAxis]);
        colour = p === null ? "#8c959f" : colourAt(p);
      }
      line.colour = colour;
      if (!pts.length) { return; }  // a run with none of these values: no line to draw
      var path = node("path", { d: "M" + pts.join(" L"), "class": "line", stroke: colour }, svg);
      node("title", {}, path).textContent = line.run + ": " + axes.map(function (a, i) {
        return a.name + "=" + (line.values[i] === null ? "—" : line.values[i]);
      }).join(", ");
    });
    axes.forEach(function (a, i) {
      var x = left + i * step, g = node("g", { "class": "axis" }, svg), s = scales[i];
      node("line", { x1: x, x2: x, y1: top, y2: H - bottom }, g);
      node("text", { x: x, y: 14, "text-anchor": "middle", "font-weight": "600" }, g).textContent =
        (a.kind === "metric" ? "metric " : "") + a.name;
      var ticks = s.numeric ? [[s.lo, 0], [s.hi, 1]] : s.cats.map(function (c, j) {
        return [c, s.cats.length === 1 ? 0.5 : j / (s.cats.length - 1)];
      });
      if (!s.numeric && ticks.length > 8) { ticks = [ticks[0], ticks[ticks.length - 1]]; }
      ticks.forEach(function (t) {
        var label = typeof t[0] === "number" ? Number(t[0].toPrecision(4)) : t[0];
        node("text", { x: x + 4, y: y(t[1]) + 4 }, g).textContent = String(label);
      });
    });
    holder.innerHTML = "";
    holder.appendChild(svg);
    holder.setAttribute("data-drawn", String(lines.length));
    var legend = $("#parallel-legend");
    if (legend && hasMetric && scales[metricAxis].numeric) {
      parallelLegend(legend, axes[metricAxis].name, scales[metricAxis], lines, metricAxis);
    }
  }

  // The metric's colour scale, from its lowest value (blue) to its highest (red).
  function colourAt(p) { return "hsl(" + Math.round(220 - 220 * p) + ",70%,45%)"; }

  // Under the chart: the colour bar with the metric's range, and each run in its line's colour.
  function parallelLegend(legend, metric, scale, lines, at) {
    legend.innerHTML = "";
    var bar = document.createElement("div"), lo = document.createElement("span"), hi = document.createElement("span");
    var name = document.createElement("b"), scaleRow = document.createElement("div"), runs = document.createElement("div");
    scaleRow.className = "colourbar-row";
    bar.className = "colourbar";
    bar.style.background = "linear-gradient(to right, " + [0, 0.25, 0.5, 0.75, 1].map(colourAt).join(", ") + ")";
    name.textContent = metric;
    lo.textContent = formatValue(scale.lo);
    hi.textContent = formatValue(scale.hi);
    lo.className = "lo"; hi.className = "hi";
    [name, lo, bar, hi].forEach(function (n) { scaleRow.appendChild(n); });
    runs.className = "legend-runs";
    lines.forEach(function (line) {
      var item = document.createElement("span"), sw = document.createElement("span");
      item.className = "legend-run";
      item.setAttribute("data-run", line.id);
      sw.className = "swatch";
      sw.style.background = line.colour;
      item.appendChild(sw);
      item.appendChild(document.createTextNode(line.run + " " + (line.values[at] === null ? "—" : formatValue(line.values[at]))));
      runs.appendChild(item);
    });
    legend.appendChild(scaleRow);
    legend.appendChild(runs);
  }

  // ------------------------------------------------------------------- logs
  function initLog() {
    var pre = $("#log");
    if (!pre) { return; }
    var state = $("#log-state"), offset = -1, url = pre.getAttribute("data-url");
    var search = $("#log-search"), matches = $("#log-matches"), count = 0, open = null, needle = "";
    // Each line a numbered element (the number is drawn by CSS, so copied text has none);
    // a piece that ends inside a line is continued by the next piece.
    function add(text) {
      var parts = text.split("\n");
      parts.forEach(function (part, i) {
        var last = i === parts.length - 1;
        if (open) {
          open.textContent += part;
          filter(open);
        } else if (!(last && part === "")) {
          count++;
          open = document.createElement("div");
          open.className = "ln";
          open.setAttribute("data-n", String(count));
          open.textContent = part;
          pre.appendChild(open);
          filter(open);
        }
        if (!last) { open = null; }
      });
    }
    function filter(line) {
      var hit = needle !== "" && line.textContent.toLowerCase().indexOf(needle) >= 0;
      line.hidden = needle !== "" && !hit;
      line.classList.toggle("hit", hit);
    }
    function searchAll() {
      needle = search.value.trim().toLowerCase();
      var lines = $$(".ln", pre);
      lines.forEach(filter);
      var found = needle ? lines.filter(function (l) { return !l.hidden; }).length : 0;
      matches.textContent = needle ? found + " of " + lines.length + " lines" : "";
      pre.setAttribute("data-matches", String(found));
    }
    if (search) { search.addEventListener("input", searchAll); }
    function poll() {
      getJSON(url + "&offset=" + offset).then(function (d) {
        var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
        if (offset < 0 && d.skipped > 0) {
          var note = document.createElement("div");
          note.className = "log-note";
          note.textContent = "… (" + d.skipped.toLocaleString() + " bytes before this; download for all; lines numbered from here)";
          pre.appendChild(note);
        }
        if (d.text) { add(d.text); }
        if (needle) { searchAll(); }
        offset = d.offset;
        if (atEnd && !needle) { pre.scrollTop = pre.scrollHeight; }
        state.textContent = d.active ? "● live, " + d.status : d.status;
        state.className = d.active ? "live" : "muted";
        pre.setAttribute("data-offset", String(offset));
        pre.setAttribute("data-lines", String(count));
        if (d.active || d.more) { setTimeout(poll, d.more ? 50 : 1000); }
      }).catch(function (err) {
        state.textContent = "Could not read the log: " + err.message;
        setTimeout(poll, 3000);
      });
    }
    poll();
  }

  // ------------------------------------------------------- logged tables
  // A table a run logged, drawn as a line, bars or a scatter of two of its columns.
  function initTablePlots() {
    $$(".table-plot").forEach(function (card) {
      var spec = JSON.parse($(".table-data", card).textContent), holder = $(".table-chart", card);
      var kind = $(".plot-kind", card), xSel = $(".plot-x", card), ySel = $(".plot-y", card), plot = null;
      function column(name) {
        var i = spec.columns.indexOf(name);
        return spec.rows.map(function (row) { return row[i]; });
      }
      function draw() {
        if (plot) { plot.destroy(); plot = null; }
        holder.hidden = !kind.value;
        card.removeAttribute("data-drawn");
        if (!kind.value) { return; }
        var el = $(".plot", holder), xs = column(xSel.value), ys = column(ySel.value);
        el.innerHTML = "";
        if (!allNumbers(ys)) {
          el.innerHTML = '<div class="nodata"></div>';
          el.firstChild.textContent = ySel.value + " holds no numbers to draw.";
          return;
        }
        var cats = allNumbers(xs) ? null : xs.map(String);
        var pairs = xs.map(function (x, i) { return [cats ? i : Number(x), ys[i] === null ? null : Number(ys[i])]; });
        if (!cats) { pairs.sort(function (a, b) { return a[0] - b[0]; }); }
        var colour = PALETTE[0], series = { label: ySel.value, stroke: colour, width: 1.5,
          value: legendValue };
        if (kind.value === "bar") {
          series.fill = colour;
          series.paths = uPlot.paths.bars({ size: [0.7, 40] });
          series.points = { show: false };
        } else if (kind.value === "scatter") {
          series.paths = function () { return null; };
          series.points = { show: true, size: 8, fill: colour };
        } else {
          series.points = { show: pairs.length <= 60, size: 5, fill: colour };
        }
        var xAxis = { label: xSel.value, labelSize: 18, stroke: ink().text, grid: { stroke: ink().grid }, values: tickLabels };
        if (cats) { xAxis.values = categoryTicks(cats); }
        var xScale = { time: false };
        if (kind.value === "bar" || cats) { xScale.range = function (u, lo, hi) { return [lo - 0.5, hi + 0.5]; }; }
        plot = new uPlot({
          width: Math.max(300, el.clientWidth || 500),
          height: 260,
          series: [{ label: xSel.value, value: cats ? function (u, v) { return v === null ? "—" : cats[v]; } : undefined }, series],
          scales: { x: xScale },
          axes: [xAxis, { label: ySel.value, labelSize: 18, size: 64, stroke: ink().text, grid: { stroke: ink().grid }, values: tickLabels }]
        }, [pairs.map(function (p) { return p[0]; }), pairs.map(function (p) { return p[1]; })], el);
        el._uplot = plot;
        card.setAttribute("data-drawn", String(pairs.length));
      }
      [kind, xSel, ySel].forEach(function (sel) { sel.addEventListener("change", draw); });
      window.addEventListener("cumulo:theme", function () { if (plot) { draw(); } });
    });
  }

  // ------------------------------------------------------------ image steps
  // A slider per image name: each run's column shows its image at the chosen step (or
  // the last one it logged before that step).
  function initImageSteps() {
    $$(".image-sync").forEach(function (sync) {
      var steps = JSON.parse(sync.getAttribute("data-steps")), slider = $(".step-slider", sync);
      var out = $(".step-value", sync);
      function show() {
        var step = steps[Number(slider.value)];
        out.textContent = String(step);
        $$(".step-image", sync).forEach(function (fig) {
          var own = JSON.parse(fig.getAttribute("data-steps")), paths = JSON.parse(fig.getAttribute("data-paths"));
          var captions = JSON.parse(fig.getAttribute("data-captions")), at = 0;
          own.forEach(function (s, i) { if (s <= step) { at = i; } });
          var src = fig.getAttribute("data-base") + paths[at], img = $("img", fig);
          if (img.getAttribute("src") !== src) { img.setAttribute("src", src); }
          img.alt = sync.getAttribute("data-key") + " at step " + own[at];
          $("a", fig).setAttribute("href", src);
          $("figcaption", fig).textContent = "step " + own[at] + (captions[at] ? " · " + captions[at] : "");
          fig.setAttribute("data-step", String(own[at]));
        });
      }
      slider.addEventListener("input", show);
    });
  }

  // --------------------------------------------------------- runs selection
  function initSelection() {
    var table = $("#runs-table");
    if (!table) { return; }
    var key = "cumulo.selection." + table.getAttribute("data-workspace");
    var chosen = new Set(JSON.parse(sessionStorage.getItem(key) || "[]"));
    var link = $("#compare-link");
    function refresh() {
      sessionStorage.setItem(key, JSON.stringify(Array.from(chosen)));
      var ids = Array.from(chosen);
      link.textContent = "Compare (" + ids.length + ")";
      link.classList.toggle("disabled", ids.length < 1);
      if (ids.length) {
        link.href = link.getAttribute("data-base") + "?" + ids.map(function (id) { return "runs=" + id; }).join("&");
        link.removeAttribute("aria-disabled");
      } else {  // nothing picked: not a link (the compare page needs a run)
        link.removeAttribute("href");
        link.setAttribute("aria-disabled", "true");
      }
    }
    $$("input.pick", table).forEach(function (box) {
      box.checked = chosen.has(box.value);
      box.addEventListener("change", function () {
        if (box.checked) { chosen.add(box.value); } else { chosen.delete(box.value); }
        refresh();
      });
    });
    var all = $("#select-all", table);
    if (all) {
      all.addEventListener("change", function () {
        $$("input.pick", table).forEach(function (box) {
          box.checked = all.checked;
          if (all.checked) { chosen.add(box.value); } else { chosen.delete(box.value); }
        });
        refresh();
      });
    }
    refresh();
  }

  // --------------------------------------------------------------- general
  function initForms() {
    document.addEventListener("submit", function (e) {
      var msg = e.target.getAttribute && e.target.getAttribute("data-confirm");
      if (msg && !window.confirm(msg)) { e.preventDefault(); }
    }, true);
    // The column picker's find box narrows its list; Enter there does not submit the form.
    document.addEventListener("input", function (e) {
      if (!e.target.classList || !e.target.classList.contains("colpick-find")) { return; }
      var needle = e.target.value.trim().toLowerCase();
      $$("label[data-col]", e.target.parentNode).forEach(function (label) {
        label.hidden = needle !== "" && label.getAttribute("data-col").toLowerCase().indexOf(needle) < 0;
      });
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && e.target.classList && e.target.classList.contains("colpick-find")) { e.preventDefault(); }
    });
    // A parent run's button shows or hides its child runs, nested under it.
    document.addEventListener("click", function (e) {
      var button = e.target.closest && e.target.closest("button.expand");
      if (!button) { return; }
      var open = button.getAttribute("aria-expanded") !== "true";
      button.setAttribute("aria-expanded", String(open));
      button.textContent = (open ? "▾ " : "▸ ") + button.textContent.slice(2);
      $$("tr[data-parent='" + button.getAttribute("data-expand") + "']").forEach(function (row) { row.hidden = !open; });
    });
    $$("select.submit-on-change").forEach(function (sel) {
      sel.addEventListener("change", function () { sel.form.submit(); });
    });
  }

  // MLflow prints links to its own UI ("/#/experiments/2/runs/<id>"): open the same run here.
  function followMlflowLink() {
    var m = location.hash.match(/^#\/experiments\/(\d+)(?:\/runs\/([0-9a-fA-F]+))?/);
    if (!m) { return false; }
    var ws = location.pathname.match(/^\/ws\/([^/]+)/);
    var base = "/ws/" + (ws ? ws[1] : "default");
    var path = m[2] ? "/runs/" + m[2] : (m[1] === "0" ? "/experiments" : "/experiments/" + m[1]);
    location.replace(base + path);
    return true;
  }

  // Dark or light: the system's choice until the header's button makes one (kept per browser).
  function initTheme() {
    var button = $("#theme-toggle");
    if (!button) { return; }
    button.addEventListener("click", function () {
      var root = document.documentElement, now = root.getAttribute("data-theme");
      var dark = now ? now === "dark" : window.matchMedia("(prefers-color-scheme: dark)").matches;
      root.setAttribute("data-theme", dark ? "light" : "dark");
      try { localStorage.setItem("cumulo.theme", dark ? "light" : "dark"); } catch (e) { /* not kept */ }
      window.dispatchEvent(new Event("cumulo:theme"));  // charts redraw in the new colours
    });
  }

  // The theme's colours for a chart's axes (text) and grid lines.
  function ink() {
    var styles = getComputedStyle(document.documentElement);
    return { text: styles.getPropertyValue("--muted").trim() || "#656d76", grid: styles.getPropertyValue("--line").trim() || "#eef0f2" };
  }

  function init() {
    if (followMlflowLink()) { return; }
    initTheme();
    initForms();
    initSelection();
    initRunCharts();
    initOverlay();
    initParallel();
    initLog();
    initImageSteps();
    initTablePlots();
    document.body.addEventListener("htmx:afterSettle", function (e) {
      if (e.target && (e.target.id === "runs-table" || e.target.id === "rows" || $("#runs-table", e.target.parentNode || document))) {
        initSelection();
      }
    });
    document.body.setAttribute("data-ready", "true");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
