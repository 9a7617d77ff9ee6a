/* klab report: draws the charts from the JSON block with the inlined Chart.js.
 * Every number comes from Python (imagefactory/report/charts.py); this only draws.
 * After drawing, each canvas gets data-painted (pixels drawn) and the body data-charts
 * (charts made) and data-errors (script errors), which the browser test reads. */
(function () {
  "use strict";
  var errors = [];
  window.addEventListener("error", function (e) {
    errors.push(String(e.message));
    document.body.dataset.errors = errors.join(" | ");
  });
  var spec = JSON.parse(document.getElementById("report-data").textContent);
  var made = 0;
  function painted(canvas) {
    var ctx = canvas.getContext("2d");
    var img = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    var n = 0;
    for (var i = 3; i < img.length; i += 4) { if (img[i] !== 0) { n++; } }
    return n;
  }
  spec.charts.forEach(function (c) {
    var canvas = document.getElementById(c.id);
    if (!canvas) { return; }
    try {
      var options = c.options || {};
      options.animation = false;
      options.responsive = true;
      options.maintainAspectRatio = false;
      new Chart(canvas, { type: c.type, data: c.data, options: options });
      made++;
      canvas.dataset.painted = String(painted(canvas));
    } catch (e) {
      errors.push(c.id + ": " + e.message);
    }
  });
  // An excerpt is the end of the log, where the failure is: show that end first.
  Array.prototype.forEach.call(document.querySelectorAll("pre.excerpt"), function (pre) {
    pre.scrollTop = pre.scrollHeight;
  });
  var toggle = document.getElementById("only-problems");
  if (toggle) {
    toggle.addEventListener("change", function () {
      document.body.classList.toggle("only-problems", toggle.checked);
    });
  }
  document.body.dataset.charts = String(made);
  document.body.dataset.errors = errors.join(" | ");
})();
