// The overview chart: open, unreviewed and violating ports over time.
// The data comes from the JSON the live panel carries (#chart-data's
// data-series attribute); when HTMX
// swaps the panel in (every few seconds) the chart redraws from the new series.
(function () {
  "use strict";

  var chart = null;

  function series() {
    var element = document.getElementById("chart-data");
    return element ? JSON.parse(element.dataset.series) : null;
  }

  function points(times, values) {
    return times.map(function (t, i) { return { x: t, y: values[i] }; });
  }

  function datasets(data) {
    return [
      { label: "open", data: points(data.t, data.open), borderColor: "#2563eb", backgroundColor: "#2563eb" },
      { label: "unreviewed", data: points(data.t, data.unreviewed), borderColor: "#d97706", backgroundColor: "#d97706" },
      { label: "violating", data: points(data.t, data.violating), borderColor: "#dc2626", backgroundColor: "#dc2626" },
    ];
  }

  // Few points (a young install) are drawn as dots; many as a line alone.
  function pointRadius(data) {
    return data.t.length <= 48 ? 3 : 0;
  }

  // In the person's time zone (their settings, as every time on the pages), not the browser's.
  function label(ms) {
    var canvas = document.getElementById("ports-chart");
    var options = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
    if (canvas && canvas.dataset.timeZone) {
      options.timeZone = canvas.dataset.timeZone;
    }
    return new Date(ms).toLocaleString([], options);
  }

  // A new installation: a message, not a chart of one point.
  function showEnough(data) {
    var young = document.getElementById("chart-too-young");
    var box = document.querySelector(".chart-box");
    if (young && box) {
      young.hidden = data.enough;
      box.hidden = !data.enough;
    }
  }

  function draw() {
    var data = series();
    var canvas = document.getElementById("ports-chart");
    if (!data || !canvas || typeof Chart === "undefined") {
      return;
    }
    showEnough(data);
    // Read by the browser tests: how many points, and the latest counts.
    canvas.dataset.points = String(data.t.length);
    canvas.dataset.last = [data.open.at(-1), data.unreviewed.at(-1), data.violating.at(-1)].join(",");
    if (chart) {
      chart.data.datasets = datasets(data);
      chart.options.scales.x.min = data.from;
      chart.options.scales.x.max = data.to;
      chart.options.elements.point.radius = pointRadius(data);
      chart.update("none");
      return;
    }
    chart = new Chart(canvas, {
      type: "line",
      data: { datasets: datasets(data) },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        elements: { point: { radius: pointRadius(data), hitRadius: 6 }, line: { borderWidth: 2, stepped: "before" } },
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { type: "linear", min: data.from, max: data.to, ticks: { callback: label, maxTicksLimit: 8 } },
          y: { beginAtZero: true, ticks: { precision: 0 } },
        },
        plugins: { tooltip: { callbacks: { title: function (items) { return items.length ? label(items[0].parsed.x) : ""; } } } },
      },
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.body.addEventListener("htmx:afterSettle", function (event) {
    if (event.target && event.target.id === "overview-live") {
      draw();
    }
  });
})();
