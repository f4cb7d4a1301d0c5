"""The report's interactive views: parallel coordinates over every grid axis and the metric, and the metric
vs each hyperparameter, drawn in the browser from one embedded JSON blob by one hand-written vanilla-JS
script (inline SVG, no libraries, nothing fetched: the page still opens offline).

    view_data(results, metric)   the blob: one record per counted trial with a finite metric value
    embed_json(data)             <script type="application/json" id="harness-data"> with `<`, `>`, `&`
                                 escaped as \\u003c ... so no value can close the script element
    render_views(data)           the HTML fragment of the "explore" section: containers, blob, script

Opening the page as `index.html#selftest` makes the script hover the first line and the first point after
drawing and write what happened into `document.title` ("selftest ok lines=34 points=102 tooltip=..."),
which a headless `chromium --dump-dom` run can read.
"""

from __future__ import annotations

import html
import json
import math
import numbers
from typing import Any

import pandas as pd

from harness.config import format_value, short_name
from harness.report.results import Results
from harness.vocabulary import direction

EXTRA = ("total_seconds", "params")  # per-trial columns carried into each record (None when absent)


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isnan(float(value))


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """A JSON-safe scalar: None for missing and non-finite numbers, ints as ints, other objects as text."""
    if _missing(value):
        return None
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    return format_value(value)


def describe_axis(name: str, values: list[Any], keys: list[str]) -> dict[str, Any]:
    """How a view draws one grid axis: numeric (log when positive and spanning more than a decade) or
    categorical (its values spread evenly, as text)."""
    known = [v for v in values if not _missing(v)]
    short = short_name(name, keys) if keys else name
    if known and all(_number(v) for v in known):
        distinct = sorted({float(v) for v in known})
        low, high = distinct[0], distinct[-1]
        return {"name": name, "short": short, "kind": "numeric", "min": low, "max": high,
                "log": bool(low > 0 and high / low > 10), "values": [_plain(v) for v in distinct]}
    distinct = sorted({format_value(v) for v in known}, key=_natural)
    return {"name": name, "short": short, "kind": "categorical", "values": distinct}


def _natural(text: str) -> tuple:
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def view_data(results: Results, metric: str) -> dict[str, Any]:
    """The views' data: metric, direction, axes (as `describe_axis`), metric_axis, and trials: one record per
    counted trial (not failed, not diverged) with a finite `metric`, in the trials table's order:
    trial_id, label, seed, metric, total_seconds, params, axes {axis: value}."""
    counted = results.included()
    values = pd.to_numeric(counted[metric], errors="coerce") if metric in counted else pd.Series(dtype=float)
    counted = counted[values.notna() & values.abs().ne(math.inf)]
    keys = list(results.axes)
    axes = [describe_axis(axis, list(counted[axis]), keys) for axis in keys]
    numeric = {a["name"] for a in axes if a["kind"] == "numeric"}
    records = []
    for _, row in counted.iterrows():
        point = {}
        for axis in keys:
            value = row[axis]
            point[axis] = None if _missing(value) else (_plain(value) if axis in numeric else format_value(value))
        records.append({
            "trial_id": str(row.get("trial_id", "")), "label": str(row.get("label", "")),
            "seed": _plain(row.get("seed")), "metric": float(row[metric]),
            **{column: _plain(row.get(column)) for column in EXTRA},
            "axes": point,
        })
    scores = [r["metric"] for r in records]
    metric_axis = {"name": metric, "short": metric, "kind": "numeric", "log": False,
                   "min": min(scores) if scores else 0.0, "max": max(scores) if scores else 1.0, "metric": True}
    return {"metric": metric, "direction": direction(metric), "axes": axes, "metric_axis": metric_axis,
            "trials": records}


def embed_json(data: dict[str, Any], element_id: str = "harness-data") -> str:
    """`data` as an inline JSON script element; `<`, `>`, `&` and the JS line separators are \\u-escaped, so
    no string in it (a label, an error) can end the element or start a comment."""
    text = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def render_views(data: dict[str, Any]) -> str:
    """The explore section's HTML: the view containers, the data blob and the script; "" with no trial or
    no grid axis (nothing to explore)."""
    if not data["trials"] or not data["axes"]:
        return ""
    metric = html.escape(data["metric"])
    better = "higher" if data["direction"] == "max" else "lower"
    return "\n".join([
        '<div id="harness-explore">',
        f'<p class="note">One line per counted trial ({len(data["trials"])}), coloured by <code>{metric}</code> '
        f"(yellow: best, {better} is better; purple: worst). Hover a line or a point to highlight that trial in "
        "every view. Numeric axes spanning more than a decade are on a log scale; categories are spread evenly "
        "(jittered in the scatters).</p>",
        "<h3>Parallel coordinates</h3>",
        '<div class="scroll" id="harness-parallel"></div>',
        f"<h3>{metric} vs each hyperparameter</h3>",
        '<div class="hx-grid" id="harness-scatter"></div>',
        '<div class="hx-tip" id="harness-tip" role="tooltip"></div>',
        '<noscript><p class="none">(the interactive views need JavaScript)</p></noscript>',
        "</div>",
        embed_json(data),
        f"<script>{SCRIPT}</script>",
    ])


# The views, drawn as SVG markup (innerHTML puts it in the SVG namespace: no namespace URL in the page).
SCRIPT = r"""
(function () {
  "use strict";
  var blob = document.getElementById("harness-data");
  var root = document.getElementById("harness-explore");
  var tip = document.getElementById("harness-tip");
  if (!blob || !root || !tip) { return; }
  var data = JSON.parse(blob.textContent);
  var recs = data.trials, axes = data.axes, mAxis = data.metric_axis, metric = data.metric;
  var STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function fmt(v) {
    if (v === null || v === undefined) { return "–"; }
    if (typeof v !== "number") { return String(v); }
    if (Number.isInteger(v)) { return Math.abs(v) >= 10000 ? v.toExponential(2) : String(v); }
    var a = Math.abs(v);
    if (a >= 1000) { return v.toFixed(0); }
    if (a >= 10) { return v.toFixed(2); }
    if (a >= 0.001) { return String(+v.toFixed(4)); }
    return v.toExponential(2);
  }
  function colour(m) {
    var span = mAxis.max - mAxis.min, t = span > 0 ? (m - mAxis.min) / span : 1;
    if (data.direction === "min") { t = 1 - t; }
    var x = Math.max(0, Math.min(1, t)) * (STOPS.length - 1), i = Math.min(STOPS.length - 2, Math.floor(x));
    var f = x - i, a = STOPS[i], b = STOPS[i + 1];
    return "rgb(" + [0, 1, 2].map(function (k) { return Math.round(a[k] + (b[k] - a[k]) * f); }).join(",") + ")";
  }
  // value -> pixel between lo and hi; null when the value has no place on the axis
  function scale(axis, lo, hi, padded) {
    if (axis.kind === "categorical") {
      var n = axis.values.length;
      return function (v) {
        var i = axis.values.indexOf(v);
        if (i < 0) { return null; }
        if (padded) { return lo + (hi - lo) * (i + 0.5) / n; }
        return n === 1 ? (lo + hi) / 2 : lo + (hi - lo) * i / (n - 1);
      };
    }
    var f = axis.log ? Math.log10 : function (x) { return x; };
    var a = f(axis.min), b = f(axis.max);
    return function (v) {
      if (typeof v !== "number" || !isFinite(v) || (axis.log && v <= 0)) { return null; }
      return b === a ? (lo + hi) / 2 : lo + (hi - lo) * (f(v) - a) / (b - a);
    };
  }
  function ticks(axis) {
    var vs = axis.values || [];
    if (axis.kind === "categorical") {
      var step = Math.max(1, Math.ceil(vs.length / 12));
      return vs.filter(function (v, i) { return i % step === 0; });
    }
    if (vs.length && vs.length <= 8) { return vs; }
    if (axis.log) {
      var out = [], p = Math.ceil(Math.log10(axis.min));
      for (; Math.pow(10, p) <= axis.max; p++) { out.push(Math.pow(10, p)); }
      return [axis.min].concat(out.filter(function (v) { return v > axis.min && v < axis.max; }), [axis.max]);
    }
    if (axis.max === axis.min) { return [axis.min]; }
    return [0, 1, 2, 3, 4].map(function (k) { return axis.min + (axis.max - axis.min) * k / 4; });
  }
  function value(r, axis) { return axis.metric ? r.metric : r.axes[axis.name]; }
  function jitter(i, k) {
    var x = Math.sin((i + 1) * 12.9898 + (k + 1) * 78.233) * 43758.5453;
    return x - Math.floor(x) - 0.5;
  }
  function svgOpen(cls, w, h, label) {
    return '<svg class="hx ' + cls + '" viewBox="0 0 ' + w + " " + h + '" width="' + w + '" height="' + h +
      '" role="img" aria-label="' + esc(label) + '">';
  }

  function parallel(el) {
    var dims = axes.concat([mAxis]);
    var W = Math.max(640, 160 * dims.length), H = 400, top = 36, bottom = H - 24, left = 70, right = W - 120;
    var xs = dims.map(function (d, j) { return left + (right - left) * j / Math.max(1, dims.length - 1); });
    var ys = dims.map(function (d) { return scale(d, bottom, top, false); });
    var out = [svgOpen("pc", W, H, "parallel coordinates of " + recs.length + " trials")];
    recs.forEach(function (r, i) {
      var pts = [];
      dims.forEach(function (d, j) {
        var y = ys[j](value(r, d));
        if (y !== null) { pts.push(xs[j].toFixed(1) + "," + y.toFixed(1)); }
      });
      out.push('<polyline class="pc-line" data-i="' + i + '" points="' + pts.join(" ") + '" stroke="' +
               colour(r.metric) + '"/>');
    });
    dims.forEach(function (d, j) {
      out.push('<line class="hx-axis" x1="' + xs[j] + '" y1="' + top + '" x2="' + xs[j] + '" y2="' + bottom + '"/>');
      out.push('<text class="hx-name" x="' + xs[j] + '" y="' + (top - 16) + '" text-anchor="middle">' +
               esc(d.short + (d.log ? " (log)" : "")) + "<\/text>");
      ticks(d).forEach(function (t) {
        var y = ys[j](t);
        if (y === null) { return; }
        out.push('<text class="hx-tick" x="' + (xs[j] + 6) + '" y="' + (y + 4).toFixed(1) + '">' + esc(fmt(t)) +
                 "<\/text>");
      });
    });
    out.push("<\/svg>");
    el.innerHTML = out.join("");
  }

  function scatters(el) {
    var cells = [];
    axes.forEach(function (a, k) {
      var W = 320, H = 230, l = 56, r = W - 12, t = 12, b = H - 44;
      var sx = scale(a, l + 10, r - 10, true), sy = scale(mAxis, b - 6, t + 6, false);
      var band = a.kind === "categorical" ? (r - l - 20) / Math.max(1, a.values.length) * 0.5 : 0;
      var s = [svgOpen("sc", W, H, metric + " vs " + a.name)];
      s.push('<line class="hx-axis" x1="' + l + '" y1="' + b + '" x2="' + r + '" y2="' + b + '"/>');
      s.push('<line class="hx-axis" x1="' + l + '" y1="' + t + '" x2="' + l + '" y2="' + b + '"/>');
      ticks(a).forEach(function (v) {
        var x = sx(v);
        if (x === null) { return; }
        s.push('<text class="hx-tick" x="' + x.toFixed(1) + '" y="' + (b + 15) + '" text-anchor="middle">' +
               esc(fmt(v)) + "<\/text>");
      });
      ticks(mAxis).forEach(function (v) {
        var y = sy(v);
        if (y === null) { return; }
        s.push('<text class="hx-tick" x="' + (l - 4) + '" y="' + (y + 4).toFixed(1) + '" text-anchor="end">' +
               esc(fmt(v)) + "<\/text>");
      });
      s.push('<text class="hx-name" x="' + ((l + r) / 2) + '" y="' + (H - 8) + '" text-anchor="middle">' +
             esc(a.name + (a.log ? " (log)" : "")) + "<\/text>");
      recs.forEach(function (rec, i) {
        var x = sx(rec.axes[a.name]), y = sy(rec.metric);
        if (x === null || y === null) { return; }
        x += jitter(i, k) * band;
        s.push('<circle class="sc-pt" data-i="' + i + '" data-k="' + k + '" cx="' + x.toFixed(1) + '" cy="' +
               y.toFixed(1) + '" r="4.5" fill="' + colour(rec.metric) + '"/>');
      });
      s.push("<\/svg>");
      cells.push('<div class="hx-cell">' + s.join("") + "<\/div>");
    });
    el.innerHTML = cells.join("");
  }

  function clear() {
    root.querySelectorAll(".hl").forEach(function (n) { n.classList.remove("hl"); });
    root.querySelectorAll("svg.dim").forEach(function (n) { n.classList.remove("dim"); });
    tip.style.display = "none";
  }
  function show(i, text, ev) {
    clear();
    root.querySelectorAll("svg.hx").forEach(function (n) { n.classList.add("dim"); });
    root.querySelectorAll('[data-i="' + i + '"]').forEach(function (n) { n.classList.add("hl"); });
    tip.textContent = text;
    tip.style.display = "block";
    tip.style.left = (ev.clientX + 14) + "px";
    tip.style.top = (ev.clientY + 14) + "px";
  }
  root.addEventListener("mouseover", function (ev) {
    var n = ev.target, i = n.getAttribute ? n.getAttribute("data-i") : null;
    if (i === null) { return; }
    var r = recs[+i], text;
    if (n.classList.contains("pc-line")) {
      text = r.label + " · seed " + fmt(r.seed) + " · " + metric + " " + fmt(r.metric);
    } else {
      var a = axes[+n.getAttribute("data-k")];
      text = r.trial_id + " · " + a.short + "=" + fmt(r.axes[a.name]) + " · " + metric + " " + fmt(r.metric);
    }
    show(i, text, ev);
  });
  root.addEventListener("mouseout", function (ev) {
    if (ev.target.getAttribute && ev.target.getAttribute("data-i") !== null) { clear(); }
  });

  var selftest = location.hash === "#selftest", report;
  try {
    parallel(document.getElementById("harness-parallel"));
    scatters(document.getElementById("harness-scatter"));
    if (selftest) {
      var lines = root.querySelectorAll("polyline.pc-line"), points = root.querySelectorAll("circle.sc-pt");
      var hover = function (n) {
        n.dispatchEvent(new MouseEvent("mouseover", {bubbles: true, clientX: 20, clientY: 20}));
        return tip.style.display === "block" && n.classList.contains("hl") ? tip.textContent : "";
      };
      var lineTip = lines.length ? hover(lines[0]) : "", pointTip = points.length ? hover(points[0]) : "";
      var ok = lines.length === recs.length && points.length > 0 && lineTip !== "" && pointTip !== "";
      report = "selftest " + (ok ? "ok" : "failed") + " lines=" + lines.length + " points=" + points.length +
               " tooltip=" + lineTip + " | point=" + pointTip;
      clear();
    }
  } catch (err) {
    report = "selftest error " + err;
    if (!selftest) { throw err; }
  }
  if (selftest) { document.title = report; }
})();
"""

assert "</script" not in SCRIPT.lower() and "http" not in SCRIPT  # stays inline and offline
