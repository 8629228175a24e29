/* Draws one stored prediction: the answer in words, probability charts, face boxes,
 * speech attention under the waveform, used/dropped modalities and timings.
 * media.image (ImageBitmap) and media.audio (AudioBuffer) exist only right after an
 * analysis in this tab: the server never keeps photos or recordings, so a stored result
 * viewed later draws the boxes on an outline of the photo's size and no waveform. */
(function () {
  "use strict";

  const M = window.Moodlens;
  const el = M.el;

  function headline(prediction) {
    const box = el("div", { class: "result-headline" });
    box.appendChild(el("span", { class: "visually-hidden", text: "Estimated emotion:" }));
    const name = el("span", { class: "emotion", "data-testid": "result-emotion" });
    name.appendChild(M.emotionLabel(prediction.emotion));
    box.appendChild(name);
    box.appendChild(
      el("span", { class: "confidence", "data-testid": "result-confidence", text: "with " + M.percent(prediction.confidence) + " confidence" })
    );
    return box;
  }

  /* What was said in the recording (when it was transcribed), with each segment's time. */
  function transcriptSection(prediction) {
    const transcript = prediction.transcript;
    if (!transcript) return null;
    const section = el("section", { class: "card transcript", "aria-labelledby": "transcript-title", "data-testid": "transcript" });
    section.appendChild(el("h3", { id: "transcript-title", text: "What was said" }));
    section.appendChild(
      el("blockquote", { class: "transcript-text", "data-testid": "transcript-text", text: transcript.text || "(no words were heard)" })
    );
    let note = "Transcribed by " + (transcript.model_name || "the transcriber") + ", language: " + transcript.language + ". ";
    note += transcript.used_as_text ? "These words were analysed as the text." : "These words were not analysed as the text (see below).";
    section.appendChild(el("p", { class: "small muted", text: note }));
    const segments = transcript.segments || [];
    if (segments.length > 1) {
      const list = el("ol", { class: "transcript-segments small" });
      segments.forEach(function (s) {
        list.appendChild(el("li", { text: s.start.toFixed(1) + "–" + s.end.toFixed(1) + " s: " + s.text }));
      });
      section.appendChild(list);
    }
    return section;
  }

  function gatedOut(prediction) {
    const fusion = prediction.fusion || {};
    return (fusion.explanation && fusion.explanation.gated_out) || {};
  }

  function statusOf(prediction, m) {
    if (m.status !== "used") return "dropped";
    return m.modality in gatedOut(prediction) ? "gated" : "used";
  }

  const STATUS_TEXT = { used: "used", gated: "left out by the fusion", dropped: "not used" };

  function describeModalities(prediction) {
    const names = { used: [], gated: [], dropped: [] };
    (prediction.modalities || []).forEach(function (m) {
      names[statusOf(prediction, m)].push((M.MODALITY_NAMES[m.modality] || m.modality).toLowerCase());
    });
    let text = "Based on " + (names.used.length ? names.used.join(", ") : "no modality") + ".";
    if (names.gated.length) text += " Analysed but left out by the fusion strategy: " + names.gated.join(", ") + ".";
    if (names.dropped.length) text += " Could not be used: " + names.dropped.join(", ") + " (see below).";
    return text;
  }

  function fusionSection(prediction) {
    const fusion = prediction.fusion;
    if (!fusion) return null;
    const section = el("section", { class: "card fusion-card", "aria-labelledby": "fusion-title" });
    section.appendChild(el("h3", { id: "fusion-title", text: "How the modalities were combined" }));
    const dl = el("dl", { class: "kv" });
    dl.appendChild(el("dt", { text: "Strategy" }));
    dl.appendChild(el("dd", { "data-testid": "fusion-strategy", text: fusion.strategy || "" }));
    const weights = fusion.weights || {};
    dl.appendChild(el("dt", { text: "Weights you chose" }));
    dl.appendChild(
      el("dd", {
        text: M.MODALITIES.filter((m) => m in weights)
          .map((m) => M.MODALITY_NAMES[m] + " " + Number(weights[m]).toFixed(2))
          .join(", "),
      })
    );
    const explanation = fusion.explanation || {};
    const effective = explanation.effective_weights || {};
    if (Object.keys(effective).length) {
      dl.appendChild(el("dt", { text: "Weights applied" }));
      dl.appendChild(
        el("dd", {
          text: Object.keys(effective)
            .map((m) => (M.MODALITY_NAMES[m] || m) + " " + Number(effective[m]).toFixed(2))
            .join(", "),
        })
      );
    }
    const gated = explanation.gated_out || {};
    if (Object.keys(gated).length) {
      dl.appendChild(el("dt", { text: "Left out by the strategy" }));
      const dd = el("dd");
      const ul = el("ul");
      Object.keys(gated).forEach(function (m) {
        ul.appendChild(el("li", { text: (M.MODALITY_NAMES[m] || m) + ": " + gated[m] }));
      });
      dd.appendChild(ul);
      dl.appendChild(dd);
    }
    if (explanation.note || explanation.summary) {
      dl.appendChild(el("dt", { text: "Note" }));
      dl.appendChild(el("dd", { text: String(explanation.note || explanation.summary) }));
    }
    section.appendChild(dl);
    return section;
  }

  /* ----- face boxes ----- */
  function faceCanvas(modality, media) {
    const details = modality.details || {};
    const faces = details.faces || [];
    const info = details.image || {};
    const bitmap = media && media.image;
    const width = bitmap ? bitmap.width : Number(info.width) || 320;
    const height = bitmap ? bitmap.height : Number(info.height) || 240;
    // Boxes are in the analysed image's pixels; scale if the server saw another size.
    const sx = info.width ? width / info.width : 1;
    const sy = info.height ? height / info.height : 1;
    const scale = Math.min(1, 640 / Math.max(width, height));
    const canvas = el("canvas", {
      class: "media-canvas face-canvas",
      width: Math.round(width * scale),
      height: Math.round(height * scale),
      role: "img",
      "data-faces": faces.length,
      "data-source": bitmap ? "photo" : "outline",
      "aria-label":
        (bitmap ? "Your photo" : "Outline of the photo (" + width + " × " + height + " pixels; the photo itself is not stored)") +
        " with " +
        faces.length +
        (faces.length === 1 ? " face box" : " face boxes"),
    });
    const ctx = canvas.getContext("2d");
    ctx.scale(scale, scale);
    if (bitmap) {
      ctx.drawImage(bitmap, 0, 0, width, height);
    } else {
      ctx.fillStyle = "#f3f5f8";
      ctx.fillRect(0, 0, width, height);
      ctx.setLineDash([8 / scale, 6 / scale]);
      ctx.strokeStyle = "#8a93a1";
      ctx.lineWidth = 2 / scale;
      ctx.strokeRect(1, 1, width - 2, height - 2);
      ctx.setLineDash([]);
      ctx.fillStyle = "#4a5361";
      ctx.font = 14 / scale + "px system-ui, sans-serif";
      ctx.fillText("photo not stored", 10 / scale, 22 / scale);
    }
    faces.forEach(function (face, i) {
      const box = face.box || face.bbox || [0, 0, 0, 0];
      const x = box[0] * sx;
      const y = box[1] * sy;
      const w = box[2] * sx;
      const h = box[3] * sy;
      const lw = Math.max(2, 3 / scale);
      ctx.lineWidth = lw + 2;
      ctx.strokeStyle = "#ffffff";
      ctx.strokeRect(x, y, w, h);
      ctx.lineWidth = lw;
      ctx.strokeStyle = i === 0 ? "#0b5cad" : "#D55E00";
      ctx.strokeRect(x, y, w, h);
      const label = "Face " + (i + 1) + (face.emotion ? ": " + face.emotion : "");
      const fontPx = Math.max(12, 15 / scale);
      ctx.font = "600 " + fontPx + "px system-ui, sans-serif";
      const tw = ctx.measureText(label).width + 8;
      const ty = y > fontPx + 6 ? y - fontPx - 6 : y + h;
      ctx.fillStyle = i === 0 ? "#0b5cad" : "#D55E00";
      ctx.fillRect(x, ty, tw, fontPx + 6);
      ctx.fillStyle = "#ffffff";
      ctx.fillText(label, x + 4, ty + fontPx);
    });
    return canvas;
  }

  /* ----- speech waveform + attention ----- */
  function speechCanvas(modality, media) {
    const details = modality.details || {};
    const attention = details.attention || [];
    const buffer = media && media.audio;
    const duration =
      Number(details.duration_seconds) ||
      (modality.input_summary && Number(modality.input_summary.duration_seconds)) ||
      (buffer ? buffer.duration : 0) ||
      (attention.length ? attention[attention.length - 1].time : 1);
    const width = 640;
    const waveH = buffer ? 90 : 34;
    const attH = 60;
    const axisH = 22;
    const height = waveH + attH + axisH + 8;
    // Attention times count from the start of the analysed (silence-trimmed) part of the clip.
    const trimmed = details.trimmed || {};
    const offset = Number(trimmed.start) || 0;
    const trimEnd = Number(trimmed.end) || duration;
    const peak = attention.reduce((best, a) => (a.weight > best.weight ? a : best), { time: 0, weight: 0 });
    const canvas = el("canvas", {
      class: "media-canvas speech-canvas",
      width: width,
      height: height,
      role: "img",
      "data-attention-points": attention.length,
      "data-source": buffer ? "audio" : "none",
      "aria-label":
        (buffer ? "Waveform of your recording" : "Recording not stored, no waveform") +
        "; attention over " +
        duration.toFixed(1) +
        " seconds" +
        (attention.length ? ", strongest at " + (offset + Number(peak.time)).toFixed(1) + " s" : ""),
    });
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, width, height);
    // waveform (min/max per pixel column of the first channel)
    ctx.strokeStyle = "#c9ced6";
    ctx.beginPath();
    ctx.moveTo(0, waveH / 2);
    ctx.lineTo(width, waveH / 2);
    ctx.stroke();
    if (buffer) {
      const span = buffer.duration > 0 ? Math.min(1, buffer.duration / duration) : 1;
      M.drawWaveform(ctx, buffer, Math.max(1, Math.floor(width * span)), waveH, 4);
    } else {
      ctx.fillStyle = "#4a5361";
      ctx.font = "13px system-ui, sans-serif";
      ctx.fillText("Recording not stored: waveform shown only right after an analysis", 8, 20);
    }
    // attention under the waveform
    const top = waveH + 8;
    ctx.fillStyle = "#1b1f24";
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillText("attention", 4, top + 12);
    ctx.fillStyle = "#eef1f5";
    if (offset > 0) ctx.fillRect(0, top, (offset / duration) * width, attH);
    if (trimEnd < duration) ctx.fillRect((trimEnd / duration) * width, top, width, attH);
    if (attention.length) {
      const maxW = Math.max.apply(null, attention.map((a) => Number(a.weight) || 0).concat([1e-9]));
      const slotW = width / Math.max(attention.length, 1);
      attention.forEach(function (a, i) {
        const x = duration > 0 ? ((offset + Number(a.time)) / duration) * width : i * slotW;
        const h = ((Number(a.weight) || 0) / maxW) * (attH - 16);
        const barW = Math.max(2, ((trimEnd - offset) / duration) * slotW - 1);
        ctx.fillStyle = "#E69F00";
        ctx.fillRect(Math.max(0, x - barW / 2), top + attH - h, barW, h);
      });
      const px = duration > 0 ? ((offset + Number(peak.time)) / duration) * width : 0;
      ctx.strokeStyle = "#a4161a";
      ctx.setLineDash([4, 3]);
      ctx.beginPath();
      ctx.moveTo(px, 0);
      ctx.lineTo(px, top + attH);
      ctx.stroke();
      ctx.setLineDash([]);
    }
    // time axis
    const axisY = top + attH + 4;
    ctx.strokeStyle = "#4a5361";
    ctx.beginPath();
    ctx.moveTo(0, axisY);
    ctx.lineTo(width, axisY);
    ctx.stroke();
    ctx.fillStyle = "#4a5361";
    const tickStep = duration > 20 ? 5 : duration > 8 ? 2 : duration > 3 ? 1 : 0.5;
    for (let t = 0; t <= duration + 1e-6; t += tickStep) {
      const x = (t / duration) * width;
      ctx.fillRect(x, axisY, 1, 5);
      const label = (tickStep < 1 ? t.toFixed(1) : String(Math.round(t))) + " s";
      ctx.fillText(label, Math.min(width - 28, x + 2), axisY + 16);
    }
    return canvas;
  }

  function singleModality(prediction) {
    return !prediction.fusion && (prediction.modalities || []).filter((m) => m.status === "used").length === 1;
  }

  function modalityCard(prediction, modality, media) {
    const used = modality.status === "used";
    const status = statusOf(prediction, modality);
    const name = M.MODALITY_NAMES[modality.modality] || modality.modality;
    const card = el("section", {
      class: "card modality-card " + (used ? "is-used" : "is-dropped"),
      "data-modality": modality.modality,
      "data-status": modality.status,
      "data-fusion": status,
      "aria-label": name + " result",
    });
    const title = el("h3");
    title.appendChild(document.createTextNode(name + " "));
    title.appendChild(
      el("span", { class: "badge " + (status === "used" ? "ok" : status === "gated" ? "neutral" : "off"), text: STATUS_TEXT[status] })
    );
    card.appendChild(title);
    if (status === "gated") {
      card.appendChild(
        el("p", { class: "gated-reason" }, [el("strong", { text: "Left out of the combined answer: " }), String(gatedOut(prediction)[modality.modality])])
      );
    }
    if (!used) {
      const error = modality.error || {};
      card.appendChild(
        el("p", { class: "dropped-reason" }, [
          el("strong", { text: "Why: " }),
          error.message || "this modality could not be analysed.",
          error.code ? el("span", { class: "muted small", text: " (" + error.code + ")" }) : null,
        ])
      );
    } else {
      const summary = el("p");
      summary.appendChild(M.emotionLabel(modality.emotion));
      summary.appendChild(document.createTextNode(" — " + M.percent(modality.confidence) + " confidence"));
      card.appendChild(summary);
      // With one modality and no fusion the overall chart above is this one: draw it once.
      if (!singleModality(prediction)) card.appendChild(M.probabilityChart(modality.probabilities, name + " probabilities"));
    }
    if (modality.modality === "face" && modality.details && (modality.details.faces || modality.details.image)) {
      card.appendChild(el("h4", { text: "Faces found" }));
      card.appendChild(faceCanvas(modality, media));
      const shown = (modality.details.faces || []).length;
      const detected = Number(modality.details.faces_detected) || shown;
      if (detected > shown) {
        card.appendChild(el("p", { class: "small", text: detected + " faces were found; the first " + shown + " were analysed." }));
      }
      if (shown > 1) {
        card.appendChild(
          el("p", { class: "small muted", text: "The face result above is for face 1; every face's own emotion is written on its box." })
        );
      }
    }
    if (modality.modality === "speech" && modality.details && (modality.details.attention || modality.details.duration_seconds)) {
      card.appendChild(el("h4", { text: "Waveform and the model's attention over time" }));
      card.appendChild(speechCanvas(modality, media));
      card.appendChild(
        el("p", {
          class: "small muted",
          text: "Orange bars: how much each moment counted for the speech model; the dashed line marks the strongest moment; grey: silence trimmed before the analysis.",
        })
      );
    }
    const dl = el("dl", { class: "kv small" });
    const input = modality.input_summary || {};
    if (modality.model_name) {
      dl.appendChild(el("dt", { text: "Model" }));
      dl.appendChild(el("dd", { text: modality.model_name + M.versionSuffix(modality.model_version) }));
    }
    if (modality.latency_ms !== undefined && modality.latency_ms !== null) {
      dl.appendChild(el("dt", { text: "Time" }));
      dl.appendChild(el("dd", { text: Number(modality.latency_ms).toFixed(0) + " ms" }));
    }
    if (input.file_name || input.media_type) {
      dl.appendChild(el("dt", { text: "Input" }));
      dl.appendChild(
        el("dd", {
          text: [input.file_name, input.media_type, input.size_bytes ? M.formatBytes(input.size_bytes) : null, input.duration_seconds ? Number(input.duration_seconds).toFixed(1) + " s" : null]
            .filter(Boolean)
            .join(" · "),
        })
      );
    }
    if (input.text) {
      dl.appendChild(el("dt", { text: "Text" }));
      dl.appendChild(el("dd", { text: "“" + input.text + "”" }));
    }
    if (dl.childNodes.length) card.appendChild(dl);
    return card;
  }

  function timingsTable(prediction) {
    const rows = (prediction.modalities || []).filter((m) => m.latency_ms !== undefined && m.latency_ms !== null);
    if (!rows.length) return null;
    const table = el("table", { class: "timings" });
    table.appendChild(el("caption", { class: "visually-hidden", text: "Time each modality took" }));
    table.appendChild(
      el("thead", {}, [el("tr", {}, [el("th", { scope: "col", text: "Modality" }), el("th", { scope: "col", text: "Status" }), el("th", { scope: "col", class: "num", text: "Time (ms)" })])])
    );
    const tbody = el("tbody");
    rows.forEach(function (m) {
      tbody.appendChild(
        el("tr", {}, [
          el("td", { text: M.MODALITY_NAMES[m.modality] || m.modality }),
          el("td", { text: STATUS_TEXT[statusOf(prediction, m)] }),
          el("td", { class: "num", text: Number(m.latency_ms).toFixed(0) }),
        ])
      );
    });
    table.appendChild(tbody);
    const section = el("section", { class: "card", "aria-labelledby": "timings-title" });
    section.appendChild(el("h3", { id: "timings-title", text: "Timings" }));
    section.appendChild(el("div", { class: "table-wrap" }, [table]));
    return section;
  }

  /** Render prediction into container (replacing its content). */
  M.renderPrediction = function (container, prediction, media, options) {
    const opts = options || {};
    M.clear(container);
    container.dataset.predictionId = prediction.id;
    container.dataset.emotion = prediction.emotion;
    const top = el("section", { class: "card result-card", "aria-labelledby": "result-title" });
    top.appendChild(el("h2", { id: "result-title", tabindex: "-1", text: opts.heading || "Result" }));
    top.appendChild(headline(prediction));
    top.appendChild(
      el("p", { class: "muted" }, [
        (M.KIND_NAMES[prediction.kind] || prediction.kind) + " analysis · " + M.formatDateTime(prediction.created_at) + ". ",
        describeModalities(prediction),
      ])
    );
    top.appendChild(
      M.probabilityChart(prediction.probabilities, prediction.fusion ? "Fused probabilities" : "Probabilities")
    );
    if (opts.link && prediction.id !== undefined) {
      top.appendChild(
        el("p", {}, [el("a", { href: "/predictions/" + encodeURIComponent(prediction.id), text: "Open this result on its own page" })])
      );
    }
    container.appendChild(top);
    const words = transcriptSection(prediction);
    if (words) container.appendChild(words);
    if (prediction.video && M.renderTimeline) container.appendChild(M.renderTimeline(prediction.video));
    const fusion = fusionSection(prediction);
    if (fusion) container.appendChild(fusion);
    const grid = el("div", { class: "grid modality-grid" });
    (prediction.modalities || []).forEach(function (m) {
      grid.appendChild(modalityCard(prediction, m, media));
    });
    container.appendChild(grid);
    const timings = timingsTable(prediction);
    if (timings) container.appendChild(timings);
    container.hidden = false;
    M.announce(
      "Result: " + prediction.emotion + " with " + M.percent(prediction.confidence, 0) + " confidence. " + describeModalities(prediction)
    );
  };
})();
