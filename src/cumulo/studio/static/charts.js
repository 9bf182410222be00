/* Cumulo studio: an experiment's Charts view (uPlot). One panel per metric, every
   shown run overlaid in its own colour; runs hidden or grouped (mean with a min-max
   band); the view kept in the URL and per experiment in local storage. */
(function () {
  "use strict";

  var S = window.cumuloStudio, $ = S.$, $$ = S.$$;
  var GROUP_COLOURS = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#0a7ea4",
    "#e16f24", "#6639ba", "#953800", "#116329"];
  var GRID = 1200;         // the most x positions a panel joins its runs' series on
  var TOOLTIP_ROWS = 10;   // series listed in a tooltip (nearest the cursor first)

  function hexAlpha(colour, alpha) {
    var n = parseInt(colour.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  // ---------------------------------------------------------------- the view
  var FIELDS = ["hide", "group", "x", "q", "panels", "wide", "smooth", "log", "outliers"];

  function View(key) {
    this.key = key;
    var url = new URLSearchParams(location.search), saved = {};
    var inUrl = FIELDS.some(function (f) { return url.has(f); });
    if (!inUrl) {
      try { saved = JSON.parse(localStorage.getItem(key) || "{}"); } catch (e) { saved = {}; }
    }
    function get(name) { return inUrl ? (url.get(name) || "") : (saved[name] || ""); }
    function list(name) { var v = get(name); return v ? v.split(",") : []; }
    this.hidden = new Set(list("hide"));
    this.group = get("group");
    this.x = get("x") || "step";
    this.q = get("q");
    this.panels = list("panels");
    this.wide = new Set(list("wide"));
    this.smooth = parseFloat(get("smooth")) || 0;
    this.log = get("log") === "1";
    this.outliers = get("outliers") === "1";
  }
  View.prototype.fields = function () {
    return {
      hide: Array.from(this.hidden).join(","), group: this.group, x: this.x === "step" ? "" : this.x,
      q: this.q, panels: this.panels.join(","), wide: Array.from(this.wide).join(","),
      smooth: this.smooth ? String(this.smooth) : "", log: this.log ? "1" : "", outliers: this.outliers ? "1" : ""
    };
  };
  View.prototype.save = function () {
    var f = this.fields(), url = new URLSearchParams(location.search);
    FIELDS.forEach(function (name) { if (f[name]) { url.set(name, f[name]); } else { url.delete(name); } });
    var query = url.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
    try { localStorage.setItem(this.key, JSON.stringify(f)); } catch (e) { /* private mode: the URL still has it */ }
  };

  // ------------------------------------------------------------- one panel
  function Panel(section, ctx) {
    this.section = section;
    this.ctx = ctx;
    this.key = section.getAttribute("data-key");
    this.el = $(".plot", section);
    this.info = $(".chart-info", section);
    this.data = null;        // the server's answer for the current axis
    this.axis = null;
    this.range = null;       // [lo, hi] in the server's x units while zoomed
    this.plot = null;
  }
  Panel.prototype.serverAxis = function () { return this.ctx.view.x === "step" ? "step" : "timestamp"; };
  Panel.prototype.load = function () {
    var self = this, axis = self.serverAxis(), q = self.ctx.query;
    var width = Math.max(200, self.el.clientWidth || 400);
    var url = self.ctx.url + "?key=" + encodeURIComponent(self.key) + "&axis=" + axis +
      "&points=" + Math.min(4000, Math.max(1000, Math.round(width * 2))) +
      "&filter=" + encodeURIComponent(q.filter) + "&order=" + encodeURIComponent(q.order) + "&size=" + q.size;
    if (self.range) { url += "&start=" + Math.floor(self.range[0]) + "&end=" + Math.ceil(self.range[1]); }
    self.loading = true;
    return S.getJSON(url).then(function (d) {
      self.loading = false;
      self.data = d;
      self.axis = axis;
      self.draw();
    }).catch(function (err) {
      self.loading = false;
      self.el.textContent = "Could not load: " + err.message;
    });
  };

  // x values of one run's series on the chosen axis (seconds for the time axes).
  Panel.prototype.xs = function (s) {
    var mode = this.ctx.view.x;
    if (mode === "step") { return s.x; }
    var run = this.ctx.byId[s.run_id], origin = mode === "relative" ? (run.started || s.x[0]) : 0;
    return s.x.map(function (v) { return (v - origin) / 1000; });
  };

  // Every visible run's series on one x grid: exact when the runs share few x values
  // (steps usually), else snapped to GRID positions across the range.
  Panel.prototype.table = function (list) {
    var self = this, all = new Set(), lo = Infinity, hi = -Infinity;
    var xss = list.map(function (s) {
      var xs = self.xs(s);
      xs.forEach(function (v) { all.add(v); if (v < lo) { lo = v; } if (v > hi) { hi = v; } });
      return xs;
    });
    var snap = null;
    if (all.size > GRID && hi > lo) {
      var w = (hi - lo) / GRID, whole = self.ctx.view.x === "step";
      snap = function (v) { var p = lo + Math.round((v - lo) / w) * w; return whole ? Math.round(p) : p; };
    }
    var grid = snap ? Array.from(new Set(Array.from(all).map(snap))) : Array.from(all);
    grid.sort(function (a, b) { return a - b; });
    var at = new Map();
    grid.forEach(function (v, i) { at.set(v, i); });
    var smooth = self.ctx.view.smooth, logScale = self.ctx.view.log;
    var columns = list.map(function (s, j) {
      var col = new Array(grid.length).fill(null), ys = S.smoothed(s.y, smooth);
      xss[j].forEach(function (x, i) {
        var y = ys[i];
        if (logScale && !(y > 0)) { y = null; }
        col[at.get(snap ? snap(x) : x)] = y;
      });
      return col;
    });
    return { x: grid, columns: columns };
  };

  Panel.prototype.draw = function () {
    var self = this, ctx = self.ctx, view = ctx.view, d = self.data;
    if (!d || self.axis !== self.serverAxis()) { return; }
    if (self.plot) { self.plot.destroy(); self.plot = null; }
    self.el.innerHTML = "";
    var list = d.series.filter(function (s) { return !view.hidden.has(s.run_id) && s.x.length > 0; });
    if (!list.length) {
      self.el.innerHTML = '<div class="nodata">No visible run logged this metric</div>';
      self.section.setAttribute("data-drawn", "0");
      return;
    }
    if (!view.group && list.every(function (s) { return s.count === 1; })) { return self.drawBars(list); }
    var t = self.table(list), data = [t.x], series = [{}], bands = [], helpers = [];
    var few = t.x.length <= 60;
    if (view.group) {
      var groups = new Map();
      list.forEach(function (s, j) {
        var name = ctx.groupValue(ctx.byId[s.run_id]);
        if (!groups.has(name)) { groups.set(name, []); }
        groups.get(name).push(t.columns[j]);
      });
      Array.from(groups.keys()).sort().forEach(function (name, g) {
        var cols = groups.get(name), mean = [], lo = [], hi = [];
        t.x.forEach(function (_, i) {
          var sum = 0, n = 0, mn = Infinity, mx = -Infinity;
          cols.forEach(function (c) {
            var v = c[i];
            if (v !== null) { sum += v; n++; if (v < mn) { mn = v; } if (v > mx) { mx = v; } }
          });
          mean.push(n ? sum / n : null); lo.push(n ? mn : null); hi.push(n ? mx : null);
        });
        var colour = GROUP_COLOURS[g % GROUP_COLOURS.length], base = data.length;
        data.push(mean, hi, lo);
        series.push(
          lineSeries(name + " (" + cols.length + " runs, mean)", colour, few),
          { label: name + " max", stroke: "transparent", points: { show: false }, spanGaps: true, value: S.legendValue },
          { label: name + " min", stroke: "transparent", points: { show: false }, spanGaps: true, value: S.legendValue });
        bands.push({ series: [base + 1, base + 2], fill: hexAlpha(colour, 0.16) });
        helpers.push(base + 1, base + 2);
      });
    } else {
      list.forEach(function (s, j) {
        var run = ctx.byId[s.run_id];
        data.push(t.columns[j]);
        series.push(lineSeries(run.name, run.colour, few));
      });
    }
    var mode = view.x, xLabel = mode === "step" ? "step" : mode === "relative" ? "relative time (s)" : "wall time";
    var opts = {
      width: Math.max(200, self.el.clientWidth || 400),
      height: Math.max(160, self.el.clientHeight || 220),
      series: series,
      bands: bands,
      legend: { show: !!view.group, live: false },
      focus: { alpha: 0.3 },
      cursor: {
        focus: { prox: 24 },
        drag: { x: true, y: false, setScale: false },
        bind: { dblclick: function () { return function () { return null; }; } }
      },
      scales: { x: { time: mode === "wall" }, y: { distr: view.log ? 3 : 1, range: view.outliers ? robustRange(data.slice(1), helpers) : undefined } },
      axes: [
        { label: xLabel, labelSize: 18, size: 36, stroke: ctx.ink, grid: { stroke: ctx.gridInk }, values: mode === "wall" ? undefined : S.tickLabels },
        { label: self.key, labelSize: 18, size: 64, stroke: ctx.ink, grid: { stroke: ctx.gridInk }, values: S.tickLabels }
      ],
      plugins: [tooltipPlugin(self, helpers)],
      hooks: {
        setSelect: [function (u) {
          if (u.select.width < 4) { return; }
          var a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          if (mode === "step") { self.range = [a, b]; self.load(); return; }
          // Time axes: the server's range is in epoch ms; relative time has no single
          // origin across runs, so that zoom is drawn from the points already here.
          if (mode === "wall") { self.range = [a * 1000, b * 1000]; self.load(); return; }
          u.setScale("x", { min: a, max: b });
        }]
      }
    };
    self.plot = new uPlot(opts, data, self.el);
    self.el._uplot = self.plot;
    // x and the band edges are not series a person toggles: only the means stay in the legend.
    var kept = new Set(series.filter(function (s, i) { return i > 0 && helpers.indexOf(i) < 0; }).map(function (s) { return s.label; }));
    $$(".u-legend .u-series", self.plot.root).forEach(function (row) {
      var label = $(".u-label", row);
      if (!label || !kept.has(label.textContent)) { row.style.display = "none"; }
    });
    self.plot.over.addEventListener("dblclick", function () {
      if (self.range) { self.range = null; self.load(); } else if (self.plot) { self.plot.setScale("x", { min: t.x[0], max: t.x[t.x.length - 1] }); }
    });
    var points = list.reduce(function (n, s) { return n + s.count; }, 0);
    self.info.textContent = list.length + (list.length === 1 ? " run" : " runs") + " · " +
      points.toLocaleString() + " points" + (self.range ? " · zoomed" : "");
    self.section.setAttribute("data-drawn", String(list.length));
    self.section.setAttribute("data-series", String(series.length - 1 - helpers.length));
  };
  // A metric each run logged once: one bar a run, in the run's colour.
  Panel.prototype.drawBars = function (list) {
    var self = this, ctx = self.ctx, n = list.length;
    var xs = list.map(function (_, i) { return i; }), data = [xs], series = [{}];
    var bars = uPlot.paths.bars({ size: [0.7, 40] });
    list.forEach(function (s, j) {
      var run = ctx.byId[s.run_id], col = new Array(n).fill(null);
      col[j] = s.y[0];
      data.push(col);
      series.push({ label: run.name, stroke: run.colour, fill: run.colour, paths: bars, points: { show: false }, value: S.legendValue });
    });
    var values = list.map(function (s) { return s.y[0]; }).filter(function (v) { return v !== null; });
    var lo = Math.min.apply(null, values.concat([0])), hi = Math.max.apply(null, values.concat([0]));
    var opts = {
      width: Math.max(200, self.el.clientWidth || 400),
      height: Math.max(160, self.el.clientHeight || 220),
      series: series,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false, range: [-0.5, n - 0.5] }, y: { range: [lo, hi + (hi - lo) * 0.05 || 1] } },
      axes: [
        { label: "run", labelSize: 18, size: 36, stroke: ctx.ink, grid: { show: false },
          values: function (u, splits) { return splits.map(function (v) { return list[v] && v === Math.round(v) ? ctx.byId[list[v].run_id].name : ""; }); } },
        { label: self.key, labelSize: 18, size: 64, stroke: ctx.ink, grid: { stroke: ctx.gridInk }, values: S.tickLabels }
      ],
      plugins: [tooltipPlugin(self, [], true)]
    };
    self.plot = new uPlot(opts, data, self.el);
    self.el._uplot = self.plot;
    self.info.textContent = n + (n === 1 ? " run" : " runs") + " · one value each";
    self.section.setAttribute("data-drawn", String(n));
    self.section.setAttribute("data-series", String(n));
    self.section.setAttribute("data-kind", "bars");
  };
  Panel.prototype.resize = function () {
    if (this.plot) { this.plot.setSize({ width: this.el.clientWidth, height: this.el.clientHeight || 220 }); }
  };

  function lineSeries(label, colour, few) {
    return { label: label, stroke: colour, width: 1.25, spanGaps: true, value: S.legendValue,
      points: { show: few, size: 4, fill: colour } };
  }

  // A y range that leaves out the few most extreme values (2nd to 98th percentile, padded).
  function robustRange(columns, skip) {
    var values = [];
    columns.forEach(function (c, j) {
      if (skip.indexOf(j + 1) >= 0) { return; }
      c.forEach(function (v) { if (v !== null && isFinite(v)) { values.push(v); } });
    });
    if (values.length < 10) { return undefined; }
    values.sort(function (a, b) { return a - b; });
    var lo = values[Math.floor(values.length * 0.02)], hi = values[Math.ceil(values.length * 0.98) - 1];
    var pad = (hi - lo) * 0.05 || Math.abs(hi) * 0.05 || 1;
    return function () { return [lo - pad, hi + pad]; };
  }

  // The value of every series at the cursor, nearest first, by the cursor (uPlot's
  // cursor and focus find the point; this only lays out the box).
  function tooltipPlugin(panel, helpers, bars) {
    var box;
    function xText(u, x) {
      var mode = panel.ctx.view.x;
      if (bars) { return "one value a run"; }
      if (mode === "step") { return "step " + x; }
      if (mode === "wall") { return new Date(x * 1000).toLocaleString(); }
      return S.formatValue(x) + " s from start";
    }
    return {
      hooks: {
        init: function (u) {
          box = document.createElement("div");
          box.className = "chart-tip";
          box.hidden = true;
          u.over.appendChild(box);
        },
        setCursor: function (u) {
          var idx = u.cursor.idx;
          if (idx === null || idx === undefined || u.cursor.left < 0) { box.hidden = true; return; }
          var cursorY = u.posToVal(u.cursor.top, "y"), rows = [];
          for (var i = 1; i < u.series.length; i++) {
            var v = u.data[i][idx];
            if (helpers.indexOf(i) >= 0 || !u.series[i].show || v === null || v === undefined) { continue; }
            rows.push({ i: i, v: v, d: Math.abs(v - cursorY) });
          }
          if (!rows.length) { box.hidden = true; return; }
          rows.sort(function (a, b) { return a.d - b.d; });
          box.innerHTML = "";
          var head = document.createElement("div");
          head.className = "tip-x";
          head.textContent = xText(u, u.data[0][idx]) + " · " + panel.key;
          box.appendChild(head);
          rows.slice(0, TOOLTIP_ROWS).forEach(function (r) {
            var line = document.createElement("div"), sw = document.createElement("span");
            var name = document.createElement("span"), val = document.createElement("b");
            line.className = "tip-row";
            sw.className = "swatch";
            sw.style.background = u.series[r.i].stroke();
            name.textContent = u.series[r.i].label;
            val.textContent = S.formatValue(r.v);
            line.appendChild(sw); line.appendChild(name); line.appendChild(val);
            line.setAttribute("data-series", String(r.i));
            box.appendChild(line);
          });
          if (rows.length > TOOLTIP_ROWS) {
            var more = document.createElement("div");
            more.className = "muted";
            more.textContent = "+ " + (rows.length - TOOLTIP_ROWS) + " more";
            box.appendChild(more);
          }
          box.hidden = false;
          var left = u.cursor.left + 14, width = box.offsetWidth;
          if (left + width > u.over.clientWidth) { left = Math.max(0, u.cursor.left - width - 14); }
          box.style.left = left + "px";
          box.style.top = Math.max(0, Math.min(u.cursor.top + 10, u.over.clientHeight - box.offsetHeight)) + "px";
        }
      }
    };
  }

  // ------------------------------------------------------------------- page
  function init() {
    var source = $("#charts-data");
    if (!source) { document.body.setAttribute("data-charts-ready", "true"); return; }
    var spec = JSON.parse(source.textContent);
    var ctx = {
      url: spec.url, query: spec.query, runs: spec.runs, byId: {},
      view: new View(spec.view_key),
      ink: S.ink().text,
      gridInk: S.ink().grid,
      groupValue: function (run) {
        var g = ctx.view.group, kind = g.split(".")[0], key = g.slice(kind.length + 1);
        var v = kind === "params" ? run.params[key] : run.tags[key];
        return v === undefined || v === null ? "(none)" : String(v);
      }
    };
    spec.runs.forEach(function (r) { ctx.byId[r.id] = r; });
    var view = ctx.view, holder = $("#panels");
    var sections = $$(".panel", holder);
    // Panel order: the saved one first, then any metric it does not name.
    var byKey = {};
    sections.forEach(function (s) { byKey[s.getAttribute("data-key")] = s; });
    view.panels.filter(function (k) { return byKey[k]; }).concat(
      sections.map(function (s) { return s.getAttribute("data-key"); }).filter(function (k) { return view.panels.indexOf(k) < 0; })
    ).forEach(function (k) { holder.appendChild(byKey[k]); });
    sections.forEach(function (s) { s.classList.toggle("wide", view.wide.has(s.getAttribute("data-key"))); });
    var panels = sections.map(function (s) { return new Panel(s, ctx); });

    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        var p = panels[sections.indexOf(e.target)];
        if (e.isIntersecting && !p.data && !p.loading) { p.load(); }
      });
    }, { rootMargin: "400px" });
    sections.forEach(function (s) { observer.observe(s); });
    function redraw(refetch) {
      view.save();
      panels.forEach(function (p) {
        if (refetch) { p.range = null; if (p.data) { p.data = null; p.load(); } } else { p.draw(); }
      });
    }

    // Controls, set from the view first.
    var search = $("#panel-search"), group = $("#charts-group"), xAxis = $("#charts-x");
    var smooth = $("#charts-smooth"), logBox = $("#charts-log"), outliers = $("#charts-outliers");
    search.value = view.q;
    if (view.group && !$("option[value='" + CSS.escape(view.group) + "']", group)) { view.group = ""; }
    group.value = view.group;
    xAxis.value = view.x;
    smooth.value = String(view.smooth);
    logBox.checked = view.log;
    outliers.checked = view.outliers;
    function filterPanels() {
      var text = view.q.toLowerCase();
      sections.forEach(function (s) { s.hidden = s.getAttribute("data-key").toLowerCase().indexOf(text) < 0; });
    }
    filterPanels();
    search.addEventListener("input", function () { view.q = search.value; filterPanels(); view.save(); });
    group.addEventListener("change", function () { view.group = group.value; showGroups(); redraw(false); });
    xAxis.addEventListener("change", function () { view.x = xAxis.value; redraw(true); });
    smooth.addEventListener("input", function () { view.smooth = parseFloat(smooth.value) || 0; redraw(false); });
    logBox.addEventListener("change", function () { view.log = logBox.checked; redraw(false); });
    outliers.addEventListener("change", function () { view.outliers = outliers.checked; redraw(false); });
    $("#charts-share").addEventListener("click", function () {
      view.save();
      var done = function () { $("#charts-share").textContent = "Link copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(location.href).then(done, done);
      } else {
        window.prompt("A link to this view:", location.href);
      }
    });

    // The runs list: the eye shows or hides a run in every panel.
    var eyes = $$("#chart-runs input.eye");
    function countVisible() {
      var n = spec.runs.filter(function (r) { return !view.hidden.has(r.id); }).length;
      $("#runs-visible").textContent = String(n);
    }
    eyes.forEach(function (box) {
      box.checked = !view.hidden.has(box.value);
      box.closest("tr").classList.toggle("off", !box.checked);
      box.addEventListener("change", function () {
        if (box.checked) { view.hidden.delete(box.value); } else { view.hidden.add(box.value); }
        box.closest("tr").classList.toggle("off", !box.checked);
        countVisible();
        redraw(false);
      });
    });
    function setAll(show) {
      eyes.forEach(function (box) {
        box.checked = show;
        box.closest("tr").classList.toggle("off", !show);
        if (show) { view.hidden.delete(box.value); } else { view.hidden.add(box.value); }
      });
      countVisible();
      redraw(false);
    }
    $("#runs-all").addEventListener("click", function () { setAll(true); });
    $("#runs-none").addEventListener("click", function () { setAll(false); });
    function showGroups() {
      $$("#chart-runs tr").forEach(function (tr) {
        $(".group-value", tr).textContent = view.group ? ctx.groupValue(ctx.byId[tr.getAttribute("data-run")]) : "";
      });
    }
    showGroups();
    countVisible();

    // Panels: wider or narrower, and reordered by dragging their handle.
    sections.forEach(function (s) {
      $(".widen", s).addEventListener("click", function () {
        var key = s.getAttribute("data-key");
        if (view.wide.has(key)) { view.wide.delete(key); } else { view.wide.add(key); }
        s.classList.toggle("wide", view.wide.has(key));
        view.save();
        var p = panels[sections.indexOf(s)];
        requestAnimationFrame(function () { p.resize(); });
      });
      var handle = $(".handle", s);
      handle.addEventListener("dragstart", function (e) {
        e.dataTransfer.setData("text/plain", s.getAttribute("data-key"));
        e.dataTransfer.setDragImage(s, 20, 20);
      });
      s.addEventListener("dragover", function (e) { e.preventDefault(); });
      s.addEventListener("drop", function (e) {
        e.preventDefault();
        var moved = byKey[e.dataTransfer.getData("text/plain")];
        if (!moved || moved === s) { return; }
        holder.insertBefore(moved, s);
        view.panels = $$(".panel", holder).map(function (p) { return p.getAttribute("data-key"); });
        view.save();
      });
    });
    view.save();
    window.addEventListener("resize", function () { panels.forEach(function (p) { p.resize(); }); });
    window.addEventListener("cumulo:theme", function () {
      ctx.ink = S.ink().text;
      ctx.gridInk = S.ink().grid;
      panels.forEach(function (p) { p.draw(); });
    });
    window.cumuloCharts = { panels: panels, view: view };
    document.body.setAttribute("data-charts-ready", "true");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
