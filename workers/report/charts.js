/* global document */
// herd report's charts, inlined into the page: reads the report data embedded in the page
// (<script id="herd-report-data">) and draws inline SVG — the training loss against tokens
// (the LLaMA paper's Figure 1) and one small chart per eval task and metric against tokens
// (Figure 2), each eval point with ± one standard error whiskers. No libraries, no network.
"use strict";
(function () {
  const svgNs = "http://www.w3.org/2000/svg";
  const data = JSON.parse(document.getElementById("herd-report-data").textContent);

  function el(parent, name, attrs, text) {
    const node = document.createElementNS(svgNs, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    parent.appendChild(node);
    return node;
  }

  // 1.2k, 3.4M, 5.6B: token counts as the paper's axes write them.
  function tokens(t) {
    for (const [div, unit] of [
      [1e12, "T"],
      [1e9, "B"],
      [1e6, "M"],
      [1e3, "k"],
    ])
      if (Math.abs(t) >= div) return `${+(t / div).toPrecision(3)}${unit}`;
    return String(+t.toPrecision(3));
  }

  // About `count` round tick values (1, 2 or 5 × 10^k apart) covering [lo, hi].
  function ticks(lo, hi, count) {
    const raw = (hi - lo) / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
      out.push(+v.toPrecision(12));
    return out;
  }

  // A value range with some air around it; a single value gets a range of its own.
  function domain(values, from0) {
    let lo = Math.min(...values);
    let hi = Math.max(...values);
    if (from0) lo = Math.min(lo, 0);
    if (hi - lo < 1e-12) {
      const pad = Math.abs(hi) > 1e-12 ? Math.abs(hi) * 0.1 : 1;
      return [lo - pad, hi + pad];
    }
    const pad = (hi - lo) * 0.05;
    return [from0 && lo === 0 ? 0 : lo - pad, hi + pad];
  }

  /**
   * One chart: `points` are {x, y, err?, title}; `markers` draws a dot (with whiskers when
   * err is given) per point; the line joins them in order.
   */
  function chart(parent, o) {
    const margin = { left: 56, right: 12, top: 26, bottom: 40 };
    const w = o.width - margin.left - margin.right;
    const h = o.height - margin.top - margin.bottom;
    const xs = domain(
      o.points.map((p) => p.x),
      true,
    );
    const ys = domain(
      o.points.flatMap((p) => (p.err === undefined ? [p.y] : [p.y - p.err, p.y + p.err])),
      false,
    );
    const x = (v) => margin.left + ((v - xs[0]) / (xs[1] - xs[0])) * w;
    const y = (v) => margin.top + h - ((v - ys[0]) / (ys[1] - ys[0])) * h;
    const svg = el(parent, "svg", {
      width: o.width,
      height: o.height,
      viewBox: `0 0 ${o.width} ${o.height}`,
      role: "img",
      "aria-label": o.title,
    });
    el(svg, "text", { x: margin.left, y: 16, class: "title" }, o.title);
    const axes = el(svg, "g", { class: "axes" });
    for (const t of ticks(xs[0], xs[1], Math.max(2, Math.floor(w / 90)))) {
      el(axes, "line", {
        x1: x(t),
        x2: x(t),
        y1: margin.top,
        y2: margin.top + h,
        class: "gridline",
      });
      el(axes, "text", { x: x(t), y: margin.top + h + 14, class: "tick x" }, tokens(t));
    }
    for (const t of ticks(ys[0], ys[1], Math.max(2, Math.floor(h / 40)))) {
      el(axes, "line", {
        x1: margin.left,
        x2: margin.left + w,
        y1: y(t),
        y2: y(t),
        class: "gridline",
      });
      el(axes, "text", { x: margin.left - 6, y: y(t) + 4, class: "tick y" }, String(t));
    }
    el(axes, "rect", { x: margin.left, y: margin.top, width: w, height: h, class: "frame" });
    el(
      axes,
      "text",
      { x: margin.left + w / 2, y: o.height - 6, class: "label" },
      "training tokens",
    );
    el(
      axes,
      "text",
      { transform: `translate(13 ${margin.top + h / 2}) rotate(-90)`, class: "label" },
      o.yLabel,
    );
    const series = el(svg, "g", {
      class: "series",
      "data-name": o.name,
      "data-points": o.points.length,
    });
    const path = o.points.map(
      (p, i) => `${i ? "L" : "M"}${x(p.x).toFixed(2)} ${y(p.y).toFixed(2)}`,
    );
    el(series, "path", { d: path.join(""), class: "line" });
    if (!o.markers) return;
    for (const p of o.points) {
      const g = el(series, "g", {
        class: "point",
        "data-tokens": p.x,
        "data-value": p.y,
        ...(p.err === undefined ? {} : { "data-stderr": p.err }),
      });
      if (p.err !== undefined) {
        const cx = x(p.x);
        el(g, "line", { x1: cx, x2: cx, y1: y(p.y - p.err), y2: y(p.y + p.err), class: "err" });
        for (const v of [p.y - p.err, p.y + p.err])
          el(g, "line", { x1: cx - 4, x2: cx + 4, y1: y(v), y2: y(v), class: "err" });
      }
      const dot = el(g, "circle", { cx: x(p.x), cy: y(p.y), r: 3.5 });
      el(dot, "title", {}, p.title);
    }
  }

  function lossFigure() {
    const fig = document.getElementById("loss");
    if (data.loss.length === 0) {
      fig.querySelector(".empty").hidden = false;
      return;
    }
    const last = data.loss[data.loss.length - 1];
    chart(fig.querySelector(".plot"), {
      name: "training loss",
      title: `Training loss${data.lossMeanOf > 1 ? ` (mean of every ${data.lossMeanOf} steps)` : ""}`,
      yLabel: "loss",
      width: 760,
      height: 340,
      markers: false,
      points: data.loss.map((p) => ({ x: p.tokens, y: p.loss })),
    });
    fig.querySelector(".summary").textContent =
      `Last: loss ${last.loss.toFixed(4)} at step ${last.step}, ` +
      `${tokens(last.tokens)} tokens (${last.tokens.toLocaleString("en-US")}).`;
  }

  function evalFigures() {
    const grid = document.getElementById("evals").querySelector(".grid");
    for (const s of data.evals) {
      const shots = s.numFewShot > 0 ? `, ${s.numFewShot}-shot` : "";
      const name = `${s.task} ${s.metric}${shots}`;
      const cell = document.createElement("figure");
      cell.className = "small";
      grid.appendChild(cell);
      chart(cell, {
        name,
        title: name,
        yLabel: s.metric,
        width: 340,
        height: 230,
        markers: true,
        points: s.points.map((p) => ({
          x: p.tokens,
          y: p.value,
          err: p.stderr,
          title:
            `step ${p.step}, ${p.tokens.toLocaleString("en-US")} tokens: ${s.metric} ` +
            `${p.value.toFixed(4)}${p.stderr === undefined ? "" : ` ± ${p.stderr.toFixed(4)}`}` +
            ` (${p.examples} examples; ${p.file})`,
        })),
      });
    }
    if (data.evals.length === 0)
      document.getElementById("evals").querySelector(".empty").hidden = false;
  }

  try {
    lossFigure();
    evalFigures();
    document.body.dataset.rendered = "true";
  } catch (err) {
    const p = document.getElementById("error");
    p.hidden = false;
    p.textContent = `The charts could not be drawn: ${err && err.stack ? err.stack : err}`;
  }
})();
