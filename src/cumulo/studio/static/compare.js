/* Compare runs: a bar chart a metric (each run's last value) and a scatter of any two
   params or metrics, drawn with uPlot in the runs' own colours. */
(function () {
  "use strict";

  var S = window.cumuloStudio, $ = S.$;

  function isNumber(v) { return typeof v === "number" && isFinite(v); }

  // A field's values as positions on an axis: numbers as they are; anything else by its
  // rank among the field's distinct values (the axis then names them).
  function positions(field) {
    if (S.allNumbers(field.values)) {
      return { numeric: true, at: field.values.map(function (v) { return v === null ? null : Number(v); }) };
    }
    var cats = Array.from(new Set(field.values.filter(function (v) { return v !== null; }).map(String))).sort();
    return { numeric: false, cats: cats, at: field.values.map(function (v) { return v === null ? null : cats.indexOf(String(v)); }) };
  }

  function axisValues(pos) {
    return pos.numeric ? S.tickLabels : S.categoryTicks(pos.cats);
  }

  // A line under a chart that says what is under the cursor: run names and values.
  function readout(el, rows) {
    el.textContent = rows.length ? rows.join(" · ") : "";
  }

  // --------------------------------------------------------------- bars
  function drawBars(spec, holder) {
    var runs = spec.runs, n = runs.length, drawn = 0;
    holder.innerHTML = "";
    spec.fields.filter(function (f) { return f.kind === "metric"; }).forEach(function (field) {
      var panel = document.createElement("div"), title = document.createElement("h3");
      var plotEl = document.createElement("div"), info = document.createElement("div");
      panel.className = "bar-panel";
      panel.setAttribute("data-key", field.key);
      title.textContent = field.key.replace(/^metrics\./, "");
      plotEl.className = "plot";
      info.className = "chart-info";
      panel.appendChild(title); panel.appendChild(plotEl); panel.appendChild(info);
      holder.appendChild(panel);
      var bars = uPlot.paths.bars({ size: [0.7, 40] });
      var data = [runs.map(function (_, i) { return i; })], series = [{}];
      runs.forEach(function (run, j) {
        var col = new Array(n).fill(null);
        col[j] = field.values[j];
        data.push(col);
        series.push({ label: run.name, stroke: run.colour, fill: run.colour, paths: bars, points: { show: false } });
      });
      var values = field.values.filter(isNumber);
      var lo = Math.min.apply(null, values.concat([0])), hi = Math.max.apply(null, values.concat([0]));
      var plot = new uPlot({
        width: Math.max(220, plotEl.clientWidth || 300),
        height: 180,
        series: series,
        legend: { show: false },
        cursor: { drag: { x: false, y: false }, points: { show: false } },
        scales: { x: { time: false, range: [-0.5, n - 0.5] }, y: { range: [lo, hi + (hi - lo) * 0.05 || 1] } },
        axes: [
          { stroke: S.ink().text, grid: { show: false }, size: 30,
            values: function (u, splits) { return splits.map(function (v) { return v === Math.round(v) && runs[v] ? runs[v].name : ""; }); } },
          { stroke: S.ink().text, grid: { stroke: S.ink().grid }, size: 60, values: S.tickLabels }
        ],
        hooks: {
          setCursor: [function (u) {
            var i = u.cursor.idx;
            readout(info, i === null || i === undefined || field.values[i] === null ? [] :
              [runs[i].name + ": " + S.formatValue(field.values[i])]);
          }]
        }
      }, data, plotEl);
      plotEl._uplot = plot;
      drawn++;
    });
    holder.setAttribute("data-drawn", String(drawn));
  }

  // ------------------------------------------------------------ scatter
  function Scatter(spec, card) {
    this.spec = spec;
    this.card = card;
    this.el = $(".plot", card);
    this.x = $("#scatter-x");
    this.y = $("#scatter-y");
    this.info = document.createElement("div");
    this.info.className = "chart-info";
    card.appendChild(this.info);
    this.plot = null;
  }
  Scatter.prototype.field = function (key) {
    return this.spec.fields.filter(function (f) { return f.key === key; })[0];
  };
  Scatter.prototype.draw = function () {
    var self = this, runs = self.spec.runs;
    var fx = self.field(self.x.value), fy = self.field(self.y.value);
    if (self.plot) { self.plot.destroy(); self.plot = null; }
    self.el.innerHTML = "";
    if (!fx || !fy) { self.el.innerHTML = '<div class="nodata">Nothing to draw.</div>'; return; }
    var px = positions(fx), py = positions(fy);
    var xs = Array.from(new Set(px.at.filter(function (v) { return v !== null; }))).sort(function (a, b) { return a - b; });
    var data = [xs], series = [{}], shown = 0;
    runs.forEach(function (run, j) {
      var col = new Array(xs.length).fill(null);
      if (px.at[j] !== null && py.at[j] !== null) {
        col[xs.indexOf(px.at[j])] = py.at[j];
        shown++;
      }
      data.push(col);
      series.push({ label: run.name, stroke: run.colour, fill: run.colour, paths: function () { return null; },
        points: { show: true, size: 10, fill: run.colour, stroke: run.colour } });
    });
    if (!shown) {
      self.el.innerHTML = '<div class="nodata">No run has both values.</div>';
      self.card.setAttribute("data-points", "0");
      return;
    }
    function pad(pos, values) {
      if (!pos.numeric) { return [-0.5, pos.cats.length - 0.5]; }
      var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values), d = (hi - lo) * 0.08 || Math.abs(lo) * 0.1 || 1;
      return [lo - d, hi + d];
    }
    var ys = py.at.filter(function (v) { return v !== null; });
    self.plot = new uPlot({
      width: Math.max(300, self.el.clientWidth || 600),
      height: 300,
      series: series,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false, range: pad(px, xs) }, y: { range: pad(py, ys) } },
      axes: [
        { label: fx.key, labelSize: 18, stroke: S.ink().text, grid: { stroke: S.ink().grid }, values: axisValues(px) },
        { label: fy.key, labelSize: 18, size: 64, stroke: S.ink().text, grid: { stroke: S.ink().grid }, values: axisValues(py) }
      ],
      hooks: {
        setCursor: [function (u) {
          var i = u.cursor.idx, rows = [];
          if (i !== null && i !== undefined) {
            runs.forEach(function (run, j) {
              if (data[j + 1][i] !== null) {
                rows.push(run.name + ": " + fx.key + " " + fx.values[j] + ", " + fy.key + " " + fy.values[j]);
              }
            });
          }
          readout(self.info, rows);
        }]
      }
    }, data, self.el);
    self.el._uplot = self.plot;
    self.card.setAttribute("data-points", String(shown));
  };

  function init() {
    var source = $("#compare-data");
    if (!source) { return; }
    var spec = JSON.parse(source.textContent);
    var holder = $("#scalar-bars");
    if (holder) { drawBars(spec, holder); }
    var card = $("#scatter");
    if (card && spec.fields.length) {
      var scatter = new Scatter(spec, card);
      var params = spec.fields.filter(function (f) { return f.kind === "param"; });
      var overlay = $("#overlay"), metric = overlay ? "metrics." + overlay.getAttribute("data-key") : "";
      var metrics = spec.fields.filter(function (f) { return f.kind === "metric"; });
      var varying = params.filter(function (f) { return new Set(f.values.map(String)).size > 1; });
      scatter.x.value = (varying[0] || params[0] || spec.fields[0]).key;
      scatter.y.value = scatter.field(metric) ? metric : (metrics[0] || spec.fields[spec.fields.length - 1]).key;
      [scatter.x, scatter.y].forEach(function (sel) { sel.addEventListener("change", function () { scatter.draw(); }); });
      scatter.draw();
    }
    window.addEventListener("cumulo:theme", function () {
      if (holder) { drawBars(spec, holder); }
      if (scatter) { scatter.draw(); }
    });
    document.body.setAttribute("data-compare-ready", "true");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
