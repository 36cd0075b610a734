// The gallery's Map view: the store's codes in 2-D on a canvas, coloured by label; wheel to zoom,
// drag to pan, hover to see an item, click to search from it. Plain canvas, no library.
"use strict";

// matplotlib's tab10 and tab20: the same colours as the picture aekit map draws
const TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf"];
const TAB20 = ["#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728",
  "#ff9896", "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f",
  "#c7c7c7", "#bcbd22", "#dbdb8d", "#17becf", "#9edae5"];
const PLAIN = TAB10[0]; // no labels, or one label only
const HIT_PX = 10; // a point answers the mouse within this many CSS pixels
const DRAG_PX = 3; // a press that moves farther is a pan, not a click
const LEGEND_MAX = 20;
const ROUNDS = 16;

class MapView {
  // data: the answer of /api/map; onPick(index) runs when a point is clicked
  constructor(canvas, tip, legend, data, onPick) {
    this.canvas = canvas;
    this.tip = tip;
    this.data = data;
    this.onPick = onPick;
    this.n = data.x.length;
    this.xs = Float64Array.from(data.x);
    this.ys = Float64Array.from(data.y);
    this.items = data.index ?? null; // point -> gallery item (null: the same number)
    this.pointOf = new Map((this.items ?? []).map((item, p) => [item, p]));
    this.hover = null; // the point under the mouse
    this.query = null; // gallery items marked: the query and its nearest
    this.nearest = [];
    this.view = null; // {cx, cy, s}: data (cx, cy) at the canvas centre, s CSS px per unit
    this.pending = false; // a redraw is queued for the next frame
    this.groups = this.colourGroups(legend);
    this.radius = this.n <= 2000 ? 3 : this.n <= 20000 ? 2 : 1;
    this.listen();
    new ResizeObserver(() => this.redraw()).observe(canvas);
  }

  // points grouped by colour (one fillStyle per group), and the legend of class names
  colourGroups(legend) {
    const labels = this.data.labels;
    const kinds = labels ? [...new Set(labels)].sort((a, b) => a - b) : [];
    if (kinds.length < 2) {
      legend.hidden = true;
      return [{ colour: PLAIN, points: Int32Array.from({ length: this.n }, (_, i) => i) }];
    }
    const palette = kinds.length <= 10 ? TAB10 : TAB20;
    const slot = new Map(kinds.map((k, j) => [k, j]));
    const members = kinds.map(() => []);
    labels.forEach((label, p) => members[slot.get(label)].push(p));
    const names = this.data.classes ?? {};
    legend.hidden = false;
    legend.replaceChildren(...kinds.slice(0, LEGEND_MAX).map((k, j) => {
      const li = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = palette[j % palette.length];
      li.dataset.testid = "legend-entry";
      li.append(swatch, document.createTextNode(names[k] ?? String(k))); // text, never HTML
      return li;
    }));
    if (kinds.length > LEGEND_MAX) {
      const more = document.createElement("li");
      more.textContent = `… and ${kinds.length - LEGEND_MAX} more labels`;
      legend.append(more);
    }
    return kinds.map((_, j) => ({
      colour: palette[j % palette.length], points: Int32Array.from(members[j]),
    }));
  }

  item(p) { return this.items ? this.items[p] : p; }

  point(item) {
    if (!this.items) return item >= 0 && item < this.n ? item : null;
    return this.pointOf.get(item) ?? null;
  }

  size() { return { w: this.canvas.clientWidth, h: this.canvas.clientHeight }; }

  fit() {
    const { w, h } = this.size();
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (let p = 0; p < this.n; p++) {
      x0 = Math.min(x0, this.xs[p]); x1 = Math.max(x1, this.xs[p]);
      y0 = Math.min(y0, this.ys[p]); y1 = Math.max(y1, this.ys[p]);
    }
    const s = 0.92 * Math.min(w / ((x1 - x0) || 1), h / ((y1 - y0) || 1));
    this.view = { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, s };
    this.fitScale = s;
    this.draw();
  }

  // data -> CSS pixels of the canvas (y up, as on the picture)
  toScreen(x, y) {
    const { w, h } = this.size();
    const v = this.view;
    return { x: (x - v.cx) * v.s + w / 2, y: h / 2 - (y - v.cy) * v.s };
  }

  toData(sx, sy) {
    const { w, h } = this.size();
    const v = this.view;
    return { x: v.cx + (sx - w / 2) / v.s, y: v.cy + (h / 2 - sy) / v.s };
  }

  // where gallery item ``index`` is drawn, in CSS pixels of the canvas (null: not on the map)
  screenOf(index) {
    const p = this.point(index);
    return p === null ? null : this.toScreen(this.xs[p], this.ys[p]);
  }

  // the point nearest the mouse within HIT_PX, or null
  hit(sx, sy) {
    const d = this.toData(sx, sy);
    let best = null;
    let bestD = (HIT_PX / this.view.s) ** 2;
    for (let p = 0; p < this.n; p++) {
      const dd = (this.xs[p] - d.x) ** 2 + (this.ys[p] - d.y) ** 2;
      if (dd <= bestD) { best = p; bestD = dd; }
    }
    return best;
  }

  mark(query, nearest) {
    this.query = query;
    this.nearest = nearest;
    this.redraw();
  }

  // one draw per animation frame, however many wheel, drag and hover events came in between:
  // a redraw of 100,000 points takes ~160 ms on a laptop-class CPU (BENCHMARKS.md)
  redraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const { w, h } = this.size();
    if (!w || !h) return; // hidden
    const dpr = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(h * dpr);
    }
    if (!this.view) return this.fit();
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const r = this.radius;
    ctx.globalAlpha = this.n > 5000 ? 0.6 : 0.85;
    // each colour in ROUNDS slices, the colours taking turns: no label is painted over by the
    // labels drawn after it, with one fill per slice (dots for a few thousand points, pixels
    // beyond)
    for (let round = 0; round < ROUNDS; round++) {
      for (const g of this.groups) {
        const from = Math.floor((g.points.length * round) / ROUNDS);
        const to = Math.floor((g.points.length * (round + 1)) / ROUNDS);
        ctx.fillStyle = g.colour;
        ctx.beginPath();
        for (let j = from; j < to; j++) {
          const p = g.points[j];
          const q = this.toScreen(this.xs[p], this.ys[p]);
          if (q.x < -r || q.y < -r || q.x > w + r || q.y > h + r) continue;
          if (r > 1) {
            ctx.moveTo(q.x + r, q.y);
            ctx.arc(q.x, q.y, r, 0, 2 * Math.PI);
          } else {
            ctx.rect(q.x - r, q.y - r, 2 * r, 2 * r);
          }
        }
        ctx.fill();
      }
    }
    ctx.globalAlpha = 1;
    const ring = (item, radius, colour, width) => {
      const p = this.point(item);
      if (p === null) return;
      const q = this.toScreen(this.xs[p], this.ys[p]);
      ctx.beginPath();
      ctx.arc(q.x, q.y, radius, 0, 2 * Math.PI);
      ctx.strokeStyle = colour;
      ctx.lineWidth = width;
      ctx.stroke();
    };
    for (const item of this.nearest) ring(item, 5, "#1d2330", 1.5);
    if (this.query !== null) ring(this.query, 9, "#d62728", 2.5);
    if (this.hover !== null) ring(this.item(this.hover), 6, "#000", 1);
  }

  showTip(p, sx, sy) {
    if (p === null) {
      this.tip.hidden = true;
      return;
    }
    const item = this.item(p);
    const label = this.data.labels ? this.data.labels[p] : null;
    const name = label === null ? "" : ` · ${this.data.classes?.[label] ?? `label ${label}`}`;
    this.tip.dataset.index = item;
    this.tip.querySelector("img").src = `/api/gallery/${item}/image`;
    this.tip.querySelector("div").textContent = `#${item}${name}`;
    this.tip.hidden = false;
    const { w, h } = this.size();
    this.tip.style.left = `${Math.min(sx + 12, w - this.tip.offsetWidth)}px`;
    this.tip.style.top = `${Math.min(sy + 12, h - this.tip.offsetHeight)}px`;
  }

  listen() {
    const c = this.canvas;
    const at = (e) => {
      const box = c.getBoundingClientRect();
      return { x: e.clientX - box.left, y: e.clientY - box.top };
    };
    let press = null;
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      const m = at(e);
      const d = this.toData(m.x, m.y);
      const s = Math.min(Math.max(this.view.s * Math.exp(-e.deltaY * 0.002),
        this.fitScale / 4), this.fitScale * 1000);
      const { w, h } = this.size();
      // the point under the mouse stays under it
      this.view = { cx: d.x - (m.x - w / 2) / s, cy: d.y + (m.y - h / 2) / s, s };
      this.redraw();
    }, { passive: false });
    c.addEventListener("pointerdown", (e) => {
      const m = at(e);
      press = { ...m, cx: this.view.cx, cy: this.view.cy, moved: false };
      c.setPointerCapture(e.pointerId);
    });
    c.addEventListener("pointermove", (e) => {
      const m = at(e);
      if (press) {
        const dx = m.x - press.x;
        const dy = m.y - press.y;
        if (Math.hypot(dx, dy) > DRAG_PX) press.moved = true;
        if (press.moved) {
          this.view = { ...this.view, cx: press.cx - dx / this.view.s,
            cy: press.cy + dy / this.view.s };
          this.showTip(null);
          return this.redraw();
        }
      }
      const p = this.hit(m.x, m.y);
      c.style.cursor = p === null ? "grab" : "pointer";
      if (p !== this.hover) {
        this.hover = p;
        this.redraw();
      }
      this.showTip(p, m.x, m.y);
    });
    c.addEventListener("pointerup", (e) => {
      const m = at(e);
      const click = press && !press.moved;
      press = null;
      if (!click) return;
      const p = this.hit(m.x, m.y);
      if (p !== null) this.onPick(this.item(p));
    });
    c.addEventListener("pointerleave", () => {
      this.hover = null;
      this.showTip(null);
      this.redraw();
    });
  }
}
