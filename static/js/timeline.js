/* Video timeline: the face, voice and fused probabilities of every time step as line charts
 * (one line per emotion, in the emotion colours), gaps where there was no face or no voice,
 * the sampled frames as thumbnails (only right after an analysis: they are not stored unless
 * the server keeps uploads) and the same steps as a table for screen readers. */
(function () {
  "use strict";

  const M = window.Moodlens;
  const el = M.el;
  const ROWS = [
    { key: "face", title: "Face", missing: "face_status" },
    { key: "voice", title: "Voice", missing: "voice_status" },
    { key: "fused", title: "Fused", missing: null },
  ];

  function best(probs) {
    if (!probs) return null;
    return M.EMOTIONS.reduce((a, b) => (Number(probs[b]) > Number(probs[a]) ? b : a), M.EMOTIONS[0]);
  }

  function chart(steps, row, duration) {
    const width = 640;
    const height = 110;
    const pad = 4;
    const canvas = el("canvas", {
      class: "media-canvas timeline-canvas",
      width: width,
      height: height,
      role: "img",
      "data-row": row.key,
      "aria-label": row.title + " probabilities over " + duration.toFixed(1) + " s (the table below lists every step)",
    });
    const ctx = canvas.getContext("2d");
    const x = (t) => pad + ((width - 2 * pad) * t) / (duration || 1);
    const y = (p) => height - pad - (height - 2 * pad) * p;
    ctx.fillStyle = "#f7f8fa";
    ctx.fillRect(0, 0, width, height);
    steps.forEach(function (step) {
      if (!step[row.key]) {
        ctx.fillStyle = "rgba(138,147,161,0.25)";
        ctx.fillRect(x(step.start), 0, Math.max(2, x(step.end) - x(step.start)), height);
      }
    });
    M.EMOTIONS.forEach(function (emotion) {
      ctx.strokeStyle = M.COLORS[emotion];
      ctx.lineWidth = 2;
      ctx.beginPath();
      let drawing = false;
      steps.forEach(function (step) {
        const probs = step[row.key];
        if (!probs) {
          drawing = false;
          return;
        }
        const px = x(step.time);
        const py = y(Number(probs[emotion]) || 0);
        if (drawing) ctx.lineTo(px, py);
        else ctx.moveTo(px, py);
        drawing = true;
        if (steps.length === 1) ctx.arc(px, py, 2, 0, 2 * Math.PI);
      });
      ctx.stroke();
    });
    return canvas;
  }

  function table(steps) {
    const t = el("table", { class: "timeline-table" });
    t.appendChild(el("caption", { class: "visually-hidden", text: "The emotion at every time step" }));
    t.appendChild(
      el("thead", {}, [
        el("tr", {}, [
          el("th", { scope: "col", text: "Time (s)" }),
          el("th", { scope: "col", text: "Face" }),
          el("th", { scope: "col", text: "Voice" }),
          el("th", { scope: "col", text: "Fused" }),
        ]),
      ])
    );
    const body = el("tbody");
    steps.forEach(function (step) {
      body.appendChild(
        el("tr", { "data-time": step.time }, [
          el("td", { text: Number(step.start).toFixed(1) + "–" + Number(step.end).toFixed(1) }),
          el("td", { text: step.face ? best(step.face) : step.face_status || "no face" }),
          el("td", { text: step.voice ? best(step.voice) : step.voice_status || "no voice" }),
          el("td", { text: step.emotion || "—" }),
        ])
      );
    });
    t.appendChild(body);
    return el("div", { class: "table-wrap" }, [t]);
  }

  /** A section drawing video.timeline (and video.thumbnails when present). */
  M.renderTimeline = function (video) {
    const steps = (video && video.timeline) || [];
    const counts = (video && video.counts) || {};
    const duration = Number(counts.duration_seconds) || (steps.length ? Number(steps[steps.length - 1].end) : 0);
    const section = el("section", {
      class: "card timeline-card",
      "aria-labelledby": "timeline-title",
      "data-testid": "timeline",
      "data-steps": steps.length,
    });
    section.appendChild(el("h3", { id: "timeline-title", text: "Emotion over time" }));
    section.appendChild(
      el("p", {
        class: "small muted",
        text:
          (counts.frames_with_face || 0) + " of " + (counts.frames_sampled || 0) + " sampled frames showed a face; " +
          (counts.windows_with_voice || 0) + " of " + (counts.windows || 0) + " voice windows held a voice. " +
          "Grey bands: no face or no voice at that moment (nothing is guessed there).",
      })
    );
    const legend = el("p", { class: "small timeline-legend" });
    M.EMOTIONS.forEach(function (e) {
      const swatch = el("span", { class: "swatch" });
      swatch.style.backgroundColor = M.COLORS[e]; // through the CSSOM: the CSP allows no inline style attributes
      legend.appendChild(el("span", { class: "legend-item" }, [swatch, " " + e + " "]));
    });
    section.appendChild(legend);
    ROWS.forEach(function (row) {
      section.appendChild(el("h4", { text: row.title }));
      section.appendChild(chart(steps, row, duration));
    });
    section.appendChild(
      el("p", { class: "timeline-axis small muted", "aria-hidden": "true" }, [
        el("span", { text: "0 s" }),
        el("span", { text: duration.toFixed(1) + " s" }),
      ])
    );
    const thumbnails = (video && video.thumbnails) || [];
    if (thumbnails.length) {
      section.appendChild(el("h4", { text: "Sampled frames" }));
      const strip = el("div", { class: "thumbnail-strip", "data-testid": "thumbnails" });
      thumbnails.forEach(function (thumb) {
        strip.appendChild(el("img", { src: thumb.image, alt: "Frame at " + Number(thumb.time).toFixed(1) + " s", height: 72 }));
      });
      section.appendChild(strip);
    }
    const details = el("details");
    details.appendChild(el("summary", { text: "Every step as a table" }));
    details.appendChild(table(steps));
    section.appendChild(details);
    return section;
  };
})();
