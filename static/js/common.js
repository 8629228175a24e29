/* Moodlens shared utilities: JSON API calls with CSRF, DOM builders, SVG charts.
 * Plain script (no build step, no CDN); every page script uses window.Moodlens. */
(function () {
  "use strict";

  const M = (window.Moodlens = window.Moodlens || {});

  /** The labels in model order, as the server renders them on <body data-emotions>. */
  function readEmotions() {
    const raw = document.body && document.body.dataset.emotions;
    try {
      const labels = JSON.parse(raw || "null");
      if (Array.isArray(labels) && labels.length && labels.every((e) => typeof e === "string")) return labels;
    } catch (error) {
      /* reported below */
    }
    console.error("Moodlens: the page did not provide the emotion labels (body data-emotions).");
    return [];
  }

  M.EMOTIONS = readEmotions();
  M.MODALITIES = ["face", "speech", "text"];
  M.MODALITY_NAMES = { face: "Face", speech: "Speech", text: "Text" };
  M.KIND_NAMES = { image: "Image", speech: "Audio", text: "Text", multimodal: "Multimodal", video: "Video" };
  // Okabe–Ito palette: distinguishable with the common colour-vision deficiencies. The n-th
  // label gets the n-th colour, so the server's label order fixes each emotion's colour.
  // Colour is never the only cue: every chart writes the emotion name beside its bar.
  M.PALETTE = ["#D55E00", "#009E73", "#CC79A7", "#E69F00", "#8C8C8C", "#0072B2", "#56B4E9"];
  M.COLORS = {};
  M.EMOTIONS.forEach(function (emotion, index) {
    M.COLORS[emotion] = M.PALETTE[index % M.PALETTE.length];
  });
  M.MODALITY_COLORS = { face: "#3b4a8c", speech: "#6b4c8a", text: "#2f6f6f" }; // not emotion colours

  M.capitalise = function (word) {
    const s = String(word || "");
    return s.charAt(0).toUpperCase() + s.slice(1);
  };

  M.percent = function (p, digits) {
    const value = Number(p) * 100;
    return (Number.isFinite(value) ? value.toFixed(digits === undefined ? 1 : digits) : "–") + "%";
  };

  M.formatDateTime = function (iso) {
    if (!iso) return "";
    const d = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : iso + "Z");
    if (Number.isNaN(d.getTime())) return iso;
    return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  };

  /** " v1.2" for a model version; nothing when the card does not say. */
  M.versionSuffix = function (version) {
    return version && version !== "unknown" ? " v" + version : "";
  };

  M.formatBytes = function (n) {
    const v = Number(n);
    if (!Number.isFinite(v)) return "";
    if (v < 1024) return v + " B";
    if (v < 1024 * 1024) return (v / 1024).toFixed(1) + " KB";
    return (v / 1024 / 1024).toFixed(1) + " MB";
  };

  M.formatSeconds = function (s) {
    const v = Math.max(0, Math.floor(Number(s) || 0));
    return Math.floor(v / 60) + ":" + String(v % 60).padStart(2, "0");
  };

  /* ---------- DOM ---------- */
  M.el = function (tag, attrs, children) {
    const node = document.createElement(tag);
    M.applyAttrs(node, attrs);
    M.append(node, children);
    return node;
  };

  M.applyAttrs = function (node, attrs) {
    if (!attrs) return;
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.setAttribute("class", value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  };

  M.append = function (node, children) {
    if (children === undefined || children === null) return;
    const list = Array.isArray(children) ? children : [children];
    for (const child of list) {
      if (child === undefined || child === null || child === false) continue;
      node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
    }
  };

  const SVG_NS = "http://www.w3.org/2000/svg";
  M.svg = function (tag, attrs, children) {
    const node = document.createElementNS(SVG_NS, tag);
    if (attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (value === undefined || value === null) continue;
        if (key === "text") node.textContent = value;
        else node.setAttribute(key, String(value));
      }
    }
    M.append(node, children);
    return node;
  };

  M.clear = function (node) {
    while (node && node.firstChild) node.removeChild(node.firstChild);
    return node;
  };

  M.announce = function (message) {
    const region = document.getElementById("live-region");
    if (!region) return;
    region.textContent = "";
    window.setTimeout(function () {
      region.textContent = message;
    }, 50);
  };

  /* ---------- API ---------- */
  M.csrfToken = function () {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  };

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }
  M.ApiError = ApiError;

  /**
   * Call the JSON API with the session cookie and the CSRF header.
   * options.json: body sent as JSON; options.form: a FormData body.
   * Resolves to the parsed JSON (or null for 204); rejects with ApiError.
   */
  M.api = async function (method, url, options) {
    const opts = options || {};
    const headers = { Accept: "application/json", "X-CSRFToken": M.csrfToken() };
    let body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    } else if (opts.form !== undefined) {
      body = opts.form;
    }
    let response;
    try {
      response = await fetch(url, { method: method, headers: headers, body: body, credentials: "same-origin" });
    } catch (err) {
      throw new ApiError(0, "network_error", "The server could not be reached. Check your connection and try again.");
    }
    if (response.status === 204) return null;
    let data = null;
    const type = response.headers.get("Content-Type") || "";
    if (type.includes("application/json")) {
      try {
        data = await response.json();
      } catch (err) {
        data = null;
      }
    }
    if (!response.ok) {
      const error = data && data.error ? data.error : {};
      if (response.status === 401 && !opts.allowUnauthenticated) {
        const login = document.body.dataset.loginUrl || "/login";
        window.location.assign(login + "?next=" + encodeURIComponent(window.location.pathname + window.location.search));
      }
      throw new ApiError(
        response.status,
        error.code || "http_" + response.status,
        error.message || "The request failed (HTTP " + response.status + ")."
      );
    }
    return data;
  };

  /** Show an error (ApiError or any Error) in a container as an alert. */
  M.showError = function (container, err, prefix) {
    if (!container) return;
    M.clear(container);
    const message = (prefix ? prefix + " " : "") + (err && err.message ? err.message : String(err));
    container.appendChild(M.el("div", { class: "alert error", role: "alert" }, [M.el("p", { text: message })]));
    container.hidden = false;
  };

  M.showMessage = function (container, message, kind) {
    if (!container) return;
    M.clear(container);
    container.appendChild(M.el("div", { class: "alert " + (kind || ""), role: "status" }, [M.el("p", { text: message })]));
    container.hidden = false;
  };

  /* ---------- charts (SVG) ---------- */

  /**
   * Horizontal bar chart with a written label and value on every bar.
   * items: [{label, value, color}], options: {max, format, title, highlight}
   */
  M.barChart = function (items, options) {
    const opts = options || {};
    const rowH = 26;
    const labelW = opts.labelWidth || 92;
    const valueW = 72;
    const width = 420;
    const barW = width - labelW - valueW;
    const height = items.length * rowH + 6;
    const max = opts.max || Math.max.apply(null, items.map((i) => i.value).concat([1e-9]));
    const format = opts.format || ((v) => M.percent(v));
    const summary = items.map((i) => i.label + " " + format(i.value)).join(", ");
    const svg = M.svg("svg", {
      viewBox: "0 0 " + width + " " + height,
      role: "img",
      "aria-label": (opts.title ? opts.title + ": " : "") + summary,
      class: "bar-chart",
    });
    if (opts.title) svg.appendChild(M.svg("title", { text: opts.title + ": " + summary }));
    items.forEach(function (item, i) {
      const y = i * rowH + 3;
      const w = Math.max(0, Math.min(1, item.value / max)) * barW;
      const strong = opts.highlight !== undefined && opts.highlight === item.label;
      const g = M.svg("g", { class: "bar", "data-label": item.label });
      g.appendChild(
        M.svg("text", {
          x: labelW - 8,
          y: y + rowH / 2 + 4,
          "text-anchor": "end",
          "font-size": 13,
          "font-weight": strong ? 700 : 400,
          fill: "#1b1f24",
          text: M.capitalise(item.label),
        })
      );
      g.appendChild(M.svg("rect", { x: labelW, y: y + 3, width: barW, height: rowH - 8, fill: "#eef1f5", rx: 3 }));
      g.appendChild(
        M.svg("rect", {
          x: labelW,
          y: y + 3,
          width: w.toFixed(2),
          height: rowH - 8,
          fill: item.color || "#0b5cad",
          stroke: "#1b1f24",
          "stroke-opacity": 0.35,
          rx: 3,
        })
      );
      g.appendChild(
        M.svg("text", {
          x: labelW + barW + 6,
          y: y + rowH / 2 + 4,
          "font-size": 13,
          "font-weight": strong ? 700 : 400,
          fill: "#1b1f24",
          text: format(item.value),
        })
      );
      svg.appendChild(g);
    });
    return svg;
  };

  /** The seven emotion probabilities as a bar chart, the most likely one in bold. */
  M.probabilityChart = function (probabilities, title) {
    const probs = probabilities || {};
    let top = null;
    M.EMOTIONS.forEach(function (e) {
      if (top === null || (probs[e] || 0) > (probs[top] || 0)) top = e;
    });
    const chart = M.barChart(
      M.EMOTIONS.map((e) => ({ label: e, value: Number(probs[e]) || 0, color: M.COLORS[e] })),
      { max: 1, title: title || "Probabilities", highlight: top }
    );
    const wrap = M.el("figure", { class: "chart probability-chart" });
    wrap.appendChild(chart);
    return wrap;
  };

  /**
   * Stacked columns per day (emotion colours) with the total written above each column
   * and a legend naming every colour.
   */
  M.stackedDayChart = function (days, title) {
    const width = 640;
    const height = 260;
    const left = 36;
    const bottom = 48;
    const top = 18;
    const plotH = height - bottom - top;
    const n = Math.max(days.length, 1);
    const slot = (width - left - 8) / n;
    const barW = Math.max(4, Math.min(36, slot * 0.7));
    const biggest = Math.max.apply(null, days.map((d) => d.count).concat([1]));
    const step = Math.max(1, Math.ceil(biggest / 4));
    const max = step * Math.ceil(biggest / step);
    const summary = days.map((d) => d.date + ": " + d.count).join("; ");
    const svg = M.svg("svg", {
      viewBox: "0 0 " + width + " " + height,
      role: "img",
      "aria-label": title + ". " + (summary || "No predictions yet."),
      class: "day-chart",
    });
    svg.appendChild(M.svg("title", { text: title }));
    // axis and grid
    for (let value = 0; value <= max; value += step) {
      const y = top + plotH - (plotH * value) / max;
      svg.appendChild(M.svg("line", { x1: left, x2: width - 4, y1: y, y2: y, stroke: "#d5dae1", "stroke-width": 1 }));
      svg.appendChild(M.svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#4a5361", text: value }));
    }
    if (!days.length) {
      svg.appendChild(
        M.svg("text", { x: width / 2, y: top + plotH / 2, "text-anchor": "middle", "font-size": 14, fill: "#4a5361", text: "No results yet" })
      );
    }
    const labelEvery = Math.ceil(n / 10);
    days.forEach(function (day, i) {
      const x = left + i * slot + (slot - barW) / 2;
      let y = top + plotH;
      M.EMOTIONS.forEach(function (e) {
        const count = (day.by_emotion && day.by_emotion[e]) || 0;
        if (!count) return;
        const h = (count / max) * plotH;
        y -= h;
        const rect = M.svg("rect", { x: x, y: y, width: barW, height: h, fill: M.COLORS[e], stroke: "#fff", "stroke-width": 1 });
        rect.appendChild(M.svg("title", { text: day.date + " " + e + ": " + count }));
        svg.appendChild(rect);
      });
      svg.appendChild(
        M.svg("text", { x: x + barW / 2, y: y - 4, "text-anchor": "middle", "font-size": 11, fill: "#1b1f24", text: day.count })
      );
      if (i % labelEvery === 0) {
        svg.appendChild(
          M.svg("text", {
            x: x + barW / 2,
            y: top + plotH + 16,
            "text-anchor": "middle",
            "font-size": 11,
            fill: "#4a5361",
            text: String(day.date).slice(5),
          })
        );
      }
    });
    // legend
    let lx = left;
    const ly = height - 14;
    M.EMOTIONS.forEach(function (e) {
      svg.appendChild(M.svg("rect", { x: lx, y: ly - 10, width: 12, height: 12, fill: M.COLORS[e], stroke: "#1b1f24", "stroke-opacity": 0.4 }));
      svg.appendChild(M.svg("text", { x: lx + 16, y: ly, "font-size": 12, fill: "#1b1f24", text: e }));
      lx += 16 + e.length * 7.2 + 14;
    });
    return svg;
  };

  /** A small coloured square followed by the emotion name (never colour alone). */
  /** Draw the first channel of an AudioBuffer as min/max bars, one per pixel column, over
   * ``columns`` columns of a band ``height`` pixels tall (``padding`` kept free top and bottom).
   * The analyse preview and the result card share it so the two pictures of a clip agree. */
  M.drawWaveform = function (ctx, buffer, columns, height, padding) {
    const data = buffer.getChannelData(0);
    const step = Math.max(1, Math.floor(data.length / columns));
    let absMax = 1e-6;
    for (let i = 0; i < data.length; i += 16) absMax = Math.max(absMax, Math.abs(data[i]));
    ctx.fillStyle = "#3d4653";
    for (let c = 0; c < columns; c++) {
      let lo = 0;
      let hi = 0;
      const start = c * step;
      const end = Math.min(data.length, start + step);
      for (let i = start; i < end; i++) {
        const v = data[i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const y1 = height / 2 - (hi / absMax) * (height / 2 - padding);
      const y2 = height / 2 - (lo / absMax) * (height / 2 - padding);
      ctx.fillRect(c, y1, 1, Math.max(1, y2 - y1));
    }
  };

  M.emotionLabel = function (emotion) {
    const span = M.el("span", { class: "emotion-label" });
    const swatch = M.el("span", { class: "emotion-swatch", "aria-hidden": "true" });
    swatch.style.backgroundColor = M.COLORS[emotion] || "#999";
    span.appendChild(swatch);
    span.appendChild(document.createTextNode(M.capitalise(emotion)));
    return span;
  };

  /* ---------- dialogs ---------- */
  /** Open a <dialog> and resolve with the value of the button that closed it. */
  M.ask = function (dialog) {
    return new Promise(function (resolve) {
      function onClose() {
        dialog.removeEventListener("close", onClose);
        resolve(dialog.returnValue);
      }
      dialog.returnValue = "";
      dialog.addEventListener("close", onClose);
      dialog.showModal();
    });
  };
})();
