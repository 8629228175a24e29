/* Analyse page: tabs, photo/recording/text inputs (file, drag-and-drop, webcam, microphone),
 * fusion controls, consent, and calling the prediction API. Media stays in this tab's memory
 * only (to draw the result); the server discards it after the analysis. */
(function () {
  "use strict";

  const M = window.Moodlens;
  const app = document.getElementById("analyse-app");
  if (!app) return;

  const errorBox = document.getElementById("analyse-error");
  const resultBox = document.getElementById("result");
  const consentDialog = document.getElementById("consent-dialog");
  const weightedStrategies = (app.dataset.weightedStrategies || "").split(",").filter(Boolean);
  // Which modalities each form's kind takes: the server's vocabulary (inference/labels.py), rendered once.
  const kindModalities = JSON.parse(app.dataset.kindModalities || "{}");
  let hasConsent = app.dataset.hasConsent === "true";
  const availability = { face: null, speech: null, text: null }; // null = unknown

  /* ---------------- tabs (WAI-ARIA tabs pattern) ---------------- */
  const tabs = Array.from(app.querySelectorAll('[role="tab"]'));
  function selectTab(tab, focus) {
    tabs.forEach(function (t) {
      const selected = t === tab;
      t.setAttribute("aria-selected", selected ? "true" : "false");
      t.tabIndex = selected ? 0 : -1;
      document.getElementById(t.getAttribute("aria-controls")).hidden = !selected;
    });
    if (focus) tab.focus();
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", "#" + tab.id.replace("tab-", ""));
    }
  }
  tabs.forEach(function (tab, index) {
    tab.addEventListener("click", function () {
      selectTab(tab, false);
    });
    tab.addEventListener("keydown", function (event) {
      let next = null;
      if (event.key === "ArrowRight") next = tabs[(index + 1) % tabs.length];
      else if (event.key === "ArrowLeft") next = tabs[(index - 1 + tabs.length) % tabs.length];
      else if (event.key === "Home") next = tabs[0];
      else if (event.key === "End") next = tabs[tabs.length - 1];
      if (next) {
        event.preventDefault();
        selectTab(next, true);
      }
    });
  });
  const initial = document.getElementById("tab-" + window.location.hash.replace("#", ""));
  if (initial && tabs.includes(initial)) selectTab(initial, false);

  /* ---------------- consent ---------------- */
  async function ensureConsent() {
    if (hasConsent) return true;
    const answer = await M.ask(consentDialog);
    if (answer !== "agree") {
      M.showMessage(
        errorBox,
        "Face and voice analysis needs your consent. Text analysis works without it; you can give consent later here or on your account page.",
        "warning"
      );
      return false;
    }
    try {
      await M.api("PUT", "/api/user/consent", { json: { consent: true } });
      hasConsent = true;
      app.dataset.hasConsent = "true";
      errorBox.hidden = true;
      M.announce("Consent recorded.");
      return true;
    } catch (err) {
      M.showError(errorBox, err, "Your consent could not be saved:");
      return false;
    }
  }

  /* ---------------- decoding and drawing ---------------- */
  async function decodeAudio(blob) {
    // OfflineAudioContext decodes without needing an audible (possibly suspended) context.
    const data = await blob.arrayBuffer();
    const ctx = new OfflineAudioContext(1, 1, 48000);
    return await ctx.decodeAudioData(data);
  }

  function drawWaveform(canvas, buffer) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width;
    const h = canvas.height;
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, w, h);
    M.drawWaveform(ctx, buffer, w, h, 2);
  }

  function rms(buffer) {
    const data = buffer.getChannelData(0);
    let sum = 0;
    for (let i = 0; i < data.length; i++) sum += data[i] * data[i];
    return Math.sqrt(sum / Math.max(1, data.length));
  }

  function setUnavailable(block, message) {
    block.classList.add("is-unavailable");
    const note = block.querySelector(".unavailable-note");
    if (note) {
      note.textContent = message;
      note.hidden = false;
    }
    block.querySelectorAll("input, button, textarea").forEach(function (control) {
      control.disabled = true;
    });
  }

  /* ---------------- photo input ---------------- */
  /* One file from a file input or dropped on its drop zone goes to `accept` (photo and audio alike). */
  function wireFilePicker(fileInput, dropzone, accept) {
    fileInput.addEventListener("change", function () {
      accept(fileInput.files && fileInput.files[0]);
    });
    dropzone.addEventListener("dragover", function (event) {
      event.preventDefault();
      dropzone.classList.add("is-dragover");
    });
    dropzone.addEventListener("dragleave", function () {
      dropzone.classList.remove("is-dragover");
    });
    dropzone.addEventListener("drop", function (event) {
      event.preventDefault();
      dropzone.classList.remove("is-dragover");
      accept(event.dataTransfer && event.dataTransfer.files && event.dataTransfer.files[0]);
    });
  }

  function ImageInput(block) {
    const self = this;
    this.block = block;
    this.blob = null;
    this.fileName = null;
    this.bitmap = null;
    const fileInput = block.querySelector(".file-input");
    const dropzone = block.querySelector(".dropzone");
    const preview = block.querySelector("canvas.preview");
    const video = block.querySelector(".webcam-video");
    const startBtn = block.querySelector(".webcam-start");
    const captureBtn = block.querySelector(".webcam-capture");
    const closeBtn = block.querySelector(".webcam-close");
    const clearBtn = block.querySelector(".clear-input");
    const chosen = block.querySelector(".chosen-file");
    let stream = null;

    function stopStream() {
      if (stream) stream.getTracks().forEach((t) => t.stop());
      stream = null;
      video.srcObject = null;
      video.hidden = true;
      captureBtn.hidden = true;
      closeBtn.hidden = true;
      startBtn.hidden = false;
    }

    async function setBlob(blob, name) {
      delete block.dataset.ready; // set again once the new photo is drawn
      self.blob = blob;
      self.fileName = name;
      self.bitmap = null;
      chosen.textContent = "Photo ready: " + name + " (" + M.formatBytes(blob.size) + ").";
      clearBtn.hidden = false;
      try {
        self.bitmap = await createImageBitmap(blob);
        const scale = Math.min(1, 640 / Math.max(self.bitmap.width, self.bitmap.height));
        preview.width = Math.round(self.bitmap.width * scale);
        preview.height = Math.round(self.bitmap.height * scale);
        preview.getContext("2d").drawImage(self.bitmap, 0, 0, preview.width, preview.height);
        preview.hidden = false;
        block.dataset.ready = "true";
      } catch (err) {
        // The browser cannot preview it; the server still decides whether it is an image.
        preview.hidden = true;
        block.dataset.ready = "true";
        chosen.textContent += " No preview available for this file type.";
      }
    }

    function clear() {
      self.blob = null;
      self.fileName = null;
      self.bitmap = null;
      fileInput.value = "";
      preview.hidden = true;
      clearBtn.hidden = true;
      chosen.textContent = "";
      delete block.dataset.ready;
    }
    this.clear = clear;

    function acceptFile(file) {
      if (!file) return;
      if (file.type && !file.type.startsWith("image/")) {
        chosen.textContent = "“" + file.name + "” is not an image; choose a JPEG, PNG, WebP or BMP photo.";
        return;
      }
      stopStream();
      setBlob(file, file.name);
    }

    wireFilePicker(fileInput, dropzone, acceptFile);

    startBtn.addEventListener("click", async function () {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        chosen.textContent = "This browser cannot use a webcam here (it needs HTTPS or localhost). Upload a photo instead.";
        return;
      }
      if (!(await ensureConsent())) return;
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false });
      } catch (err) {
        chosen.textContent = "The webcam could not be opened (" + (err.name || err) + "). Check the browser's permission, or upload a photo.";
        return;
      }
      video.srcObject = stream;
      video.hidden = false;
      startBtn.hidden = true;
      captureBtn.hidden = false;
      closeBtn.hidden = false;
      chosen.textContent = "Webcam on. Press “Take photo” when ready.";
      captureBtn.focus();
    });

    captureBtn.addEventListener("click", function () {
      if (!stream || !video.videoWidth) {
        chosen.textContent = "The webcam picture is not ready yet; try again in a moment.";
        return;
      }
      const canvas = document.createElement("canvas");
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0);
      canvas.toBlob(
        function (blob) {
          stopStream();
          if (blob) setBlob(blob, "webcam-photo.jpg");
          startBtn.focus();
        },
        "image/jpeg",
        0.92
      );
    });
    closeBtn.addEventListener("click", function () {
      stopStream();
      chosen.textContent = "";
      startBtn.focus();
    });
    clearBtn.addEventListener("click", function () {
      clear();
      fileInput.focus();
    });
  }

  /* ---------------- recording input ---------------- */
  function AudioInput(block) {
    const self = this;
    this.block = block;
    this.blob = null;
    this.fileName = null;
    this.buffer = null;
    const maxSeconds = Number(block.dataset.maxSeconds) || 60;
    const fileInput = block.querySelector(".file-input");
    const dropzone = block.querySelector(".dropzone");
    const preview = block.querySelector("canvas.waveform-preview");
    const playback = block.querySelector("audio.playback");
    const startBtn = block.querySelector(".record-start");
    const stopBtn = block.querySelector(".record-stop");
    const indicator = block.querySelector(".recording-indicator");
    const timer = block.querySelector(".record-timer");
    const clearBtn = block.querySelector(".clear-input");
    const chosen = block.querySelector(".chosen-file");
    let recorder = null;
    let stream = null;
    let tick = null;
    let playbackUrl = null;

    async function setBlob(blob, name, extra) {
      delete block.dataset.ready; // set again once the new recording is decoded
      self.blob = blob;
      self.fileName = name;
      self.buffer = null;
      clearBtn.hidden = false;
      if (playbackUrl) URL.revokeObjectURL(playbackUrl);
      playbackUrl = URL.createObjectURL(blob);
      playback.src = playbackUrl;
      playback.hidden = false;
      let text = "Recording ready: " + name + " (" + M.formatBytes(blob.size) + (extra ? ", " + extra : "") + ").";
      try {
        self.buffer = await decodeAudio(blob);
        drawWaveform(preview, self.buffer);
        preview.hidden = false;
        text = "Recording ready: " + name + " (" + self.buffer.duration.toFixed(1) + " s, " + M.formatBytes(blob.size) + ").";
        block.dataset.rms = rms(self.buffer).toFixed(5);
      } catch (err) {
        preview.hidden = true;
        text += " The browser cannot draw its waveform; the server will still try to read it.";
      }
      chosen.textContent = text;
      block.dataset.ready = "true";
    }

    function clear() {
      self.blob = null;
      self.fileName = null;
      self.buffer = null;
      fileInput.value = "";
      preview.hidden = true;
      playback.hidden = true;
      playback.removeAttribute("src");
      if (playbackUrl) URL.revokeObjectURL(playbackUrl);
      playbackUrl = null;
      clearBtn.hidden = true;
      chosen.textContent = "";
      delete block.dataset.ready;
      delete block.dataset.rms;
    }
    this.clear = clear;

    function acceptFile(file) {
      if (!file) return;
      if (file.type && !file.type.startsWith("audio/") && !file.type.startsWith("video/webm")) {
        chosen.textContent = "“" + file.name + "” is not an audio file; choose a WAV, FLAC, OGG, MP3 or WebM recording.";
        return;
      }
      setBlob(file, file.name);
    }

    wireFilePicker(fileInput, dropzone, acceptFile);

    function pickMimeType() {
      const candidates = ["audio/webm;codecs=opus", "audio/webm", "audio/ogg;codecs=opus", "audio/mp4"];
      for (const type of candidates) {
        if (window.MediaRecorder && MediaRecorder.isTypeSupported(type)) return type;
      }
      return "";
    }

    function stopRecording() {
      if (recorder && recorder.state !== "inactive") recorder.stop();
    }

    startBtn.addEventListener("click", async function () {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.MediaRecorder) {
        chosen.textContent = "This browser cannot record here (it needs HTTPS or localhost). Upload a recording instead.";
        return;
      }
      if (!(await ensureConsent())) return;
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      } catch (err) {
        chosen.textContent = "The microphone could not be opened (" + (err.name || err) + "). Check the browser's permission, or upload a recording.";
        return;
      }
      const mimeType = pickMimeType();
      const chunks = [];
      try {
        recorder = mimeType ? new MediaRecorder(stream, { mimeType: mimeType }) : new MediaRecorder(stream);
      } catch (err) {
        stream.getTracks().forEach((t) => t.stop());
        chosen.textContent = "Recording is not supported in this browser (" + (err.name || err) + ").";
        return;
      }
      const started = performance.now();
      recorder.addEventListener("dataavailable", function (event) {
        if (event.data && event.data.size) chunks.push(event.data);
      });
      recorder.addEventListener("stop", function () {
        window.clearInterval(tick);
        stream.getTracks().forEach((t) => t.stop());
        indicator.hidden = true;
        stopBtn.hidden = true;
        startBtn.hidden = false;
        block.dataset.recording = "false";
        const type = recorder.mimeType || mimeType || "audio/webm";
        const ext = type.includes("mp4") ? "m4a" : type.includes("ogg") ? "ogg" : "webm";
        const seconds = (performance.now() - started) / 1000;
        setBlob(new Blob(chunks, { type: type }), "microphone-recording." + ext, seconds.toFixed(1) + " s");
        M.announce("Recording stopped after " + seconds.toFixed(0) + " seconds.");
        startBtn.focus();
      });
      clear();
      recorder.start(250);
      block.dataset.recording = "true";
      timer.textContent = "0:00";
      indicator.hidden = false;
      startBtn.hidden = true;
      stopBtn.hidden = false;
      stopBtn.focus();
      M.announce("Recording. Press Stop recording when you are done.");
      tick = window.setInterval(function () {
        const elapsed = (performance.now() - started) / 1000;
        timer.textContent = M.formatSeconds(elapsed);
        if (elapsed >= maxSeconds) stopRecording();
      }, 200);
    });
    stopBtn.addEventListener("click", stopRecording);
    clearBtn.addEventListener("click", function () {
      clear();
      fileInput.focus();
    });
  }

  /* ---------------- text input ---------------- */
  function TextInput(block) {
    this.block = block;
    const area = block.querySelector("textarea");
    const counter = block.querySelector(".counter");
    const max = Number(area.dataset.max) || 5000;
    this.area = area;
    function update() {
      const n = area.value.length;
      counter.textContent = n + " / " + max + " characters";
      counter.classList.toggle("is-over", n >= max);
    }
    area.addEventListener("input", update);
    update();
    this.value = function () {
      return area.value.trim();
    };
  }

  /* ---------------- fusion controls ---------------- */
  const strategySelect = document.getElementById("fusion-strategy");
  const sliders = Array.from(app.querySelectorAll('.fusion-controls input[type="range"]'));
  function syncSlider(slider) {
    const out = document.getElementById(slider.id + "-value");
    if (out) out.textContent = Number(slider.value).toFixed(2);
  }
  sliders.forEach(function (slider) {
    slider.addEventListener("input", function () {
      syncSlider(slider);
    });
  });
  document.getElementById("weights-reset").addEventListener("click", function () {
    sliders.forEach(function (slider) {
      slider.value = slider.dataset.default;
      syncSlider(slider);
    });
  });
  function syncStrategy() {
    const usesWeights = weightedStrategies.includes(strategySelect.value);
    sliders.forEach(function (slider) {
      slider.disabled = !usesWeights;
    });
    const note = document.getElementById("weights-note");
    note.textContent = usesWeights
      ? "Used by the " + strategySelect.value + " strategy; rescaled to sum to 1 over the inputs you give."
      : "The " + strategySelect.value + " strategy does not use weights.";
  }
  strategySelect.addEventListener("change", syncStrategy);
  syncStrategy();

  /* ---------------- widgets ---------------- */
  const imageInputs = Array.from(app.querySelectorAll(".image-input")).map((b) => new ImageInput(b));
  const audioInputs = Array.from(app.querySelectorAll(".audio-input")).map((b) => new AudioInput(b));
  const textInputs = Array.from(app.querySelectorAll(".text-input")).map((b) => new TextInput(b));
  function widgetIn(list, form) {
    return list.find((w) => form.contains(w.block)) || null;
  }

  /* ---------------- installed models ---------------- */
  function parseModels(data) {
    const source = (data && (data.modalities || data.models || data.recognizers)) || data || {};
    const out = {};
    M.MODALITIES.forEach(function (m) {
      let entry = source[m];
      if (Array.isArray(source)) entry = source.find((e) => e && (e.modality === m || e.name === m));
      out[m] = entry ? { available: Boolean(entry.available), name: entry.model_name, version: entry.model_version, error: entry.error } : { available: false };
    });
    const fusion = (data && data.fusion) || {};
    return { modalities: out, fusion: fusion, transcriber: (data && data.transcriber) || null };
  }

  function describe(m, info) {
    if (info.available) return (info.name || "model") + M.versionSuffix(info.version);
    return info.error || "not installed on this server yet";
  }

  /* While the server is still loading its models, say so and look again every 1.5 s. */
  async function watchWarmUp() {
    const note = document.getElementById("models-warming");
    if (!note || note.hidden) return;
    try {
      const data = await M.api("GET", "/api/models");
      if (!data.loading) {
        note.hidden = true;
        return;
      }
    } catch (err) {
      /* the next look decides */
    }
    setTimeout(watchWarmUp, 1500);
  }

  async function loadModels() {
    const list = document.getElementById("model-status-list");
    let parsed;
    try {
      parsed = parseModels(await M.api("GET", "/api/models"));
    } catch (err) {
      M.clear(list);
      list.appendChild(M.el("li", { class: "alert error", text: "Could not ask which models are installed: " + err.message }));
      return;
    }
    M.clear(list);
    M.MODALITIES.forEach(function (m) {
      const info = parsed.modalities[m];
      availability[m] = info.available;
      list.appendChild(
        M.el("li", { "data-modality": m, "data-available": info.available ? "true" : "false" }, [
          M.el("strong", { text: M.MODALITY_NAMES[m] + ": " }),
          M.el("span", { class: "badge " + (info.available ? "ok" : "off"), text: info.available ? "available" : "unavailable" }),
          " ",
          M.el("span", { class: "small muted", text: describe(m, info) }),
        ])
      );
      if (!info.available) {
        const msg = "The " + M.MODALITY_NAMES[m].toLowerCase() + " model is not available on this server (" + describe(m, info) + "), so this input is switched off.";
        app.querySelectorAll('.input-block[data-modality="' + m + '"]').forEach((b) => setUnavailable(b, msg));
      }
    });
    // Without a transcriber on the server, the "transcribe" switches are off and say why.
    const transcriber = parsed.transcriber || { available: false, error: "not installed" };
    if (!transcriber.available) {
      app.querySelectorAll(".transcribe-switch input").forEach(function (box) {
        box.checked = false;
        box.disabled = true;
        const label = box.parentElement.querySelector("label");
        if (label) label.textContent = "Transcription is not available on this server (" + (transcriber.error || "not installed") + ").";
      });
    }
    // Single-modality tabs whose model is missing cannot submit at all.
    // A form is switched off when none of its kind's modalities is available.
    app.querySelectorAll(".predict-form").forEach(function (form) {
      const modalities = kindModalities[form.dataset.kind] || [];
      const anyAvailable = modalities.some((m) => parsed.modalities[m] && parsed.modalities[m].available);
      if (!anyAvailable) form.querySelector(".predict-submit").disabled = true;
    });
    // A strategy whose artefact is missing (the stacker, the calibrated temperatures) is marked, not hidden.
    const fusion = parsed.fusion || {};
    (fusion.unavailable_strategies || []).forEach(function (name) {
      const opt = strategySelect.querySelector('option[value="' + name + '"]');
      if (opt && !opt.disabled) {
        opt.disabled = true;
        opt.textContent = name + " (not installed)";
      }
    });
    if (strategySelect.selectedOptions.length && strategySelect.selectedOptions[0].disabled) {
      const firstOffered = strategySelect.querySelector("option:not([disabled])");
      if (firstOffered) strategySelect.value = firstOffered.value;
      syncStrategy();
    }
    app.dataset.modelsLoaded = "true";
  }
  loadModels();
  watchWarmUp();

  /* ---------------- submitting ---------------- */
  function setBusy(form, busy, message) {
    const button = form.querySelector(".predict-submit");
    const status = form.querySelector(".status");
    button.disabled = busy;
    form.setAttribute("aria-busy", busy ? "true" : "false");
    status.className = "status" + (busy ? " busy" : "");
    status.textContent = message || "";
  }

  function buildRequest(form) {
    const kind = form.dataset.kind;
    const image = widgetIn(imageInputs, form);
    const audio = widgetIn(audioInputs, form);
    const text = widgetIn(textInputs, form);
    const media = { image: null, audio: null };
    if (kind === "text") {
      if (!text.value()) throw new Error("Type some text to analyse first.");
      return { url: "/api/predict/text", json: { text: text.value() }, media: media, needsConsent: false };
    }
    const body = new FormData();
    let needsConsent = false;
    let count = 0;
    if (image && image.blob) {
      body.append("image", image.blob, image.fileName || "photo.jpg");
      media.image = image.bitmap;
      needsConsent = true;
      count++;
    }
    if (audio && audio.blob) {
      body.append("audio", audio.blob, audio.fileName || "recording.webm");
      const transcribe = form.querySelector(".transcribe-switch input");
      if (transcribe && transcribe.checked && !transcribe.disabled) body.append("transcribe", "true");
      media.audio = audio.buffer;
      needsConsent = true;
      count++;
    }
    if (kind === "image") {
      if (!count) throw new Error("Choose, drop or take a photo first.");
      return { url: "/api/predict/image", form: body, media: media, needsConsent: true };
    }
    if (kind === "speech") {
      if (!count) throw new Error("Choose or record a recording first.");
      return { url: "/api/predict/speech", form: body, media: media, needsConsent: true };
    }
    if (text && text.value()) {
      body.append("text", text.value());
      count++;
    }
    if (!count) throw new Error("Give at least one of a photo, a recording or a text.");
    const strategy = strategySelect.value;
    body.append("strategy", strategy);
    if (weightedStrategies.includes(strategy)) {
      const weights = {};
      sliders.forEach(function (slider) {
        weights[slider.name.replace("weight_", "")] = Number(slider.value);
      });
      body.append("weights", JSON.stringify(weights));
    }
    return { url: "/api/predict/multimodal", form: body, media: media, needsConsent: needsConsent };
  }

  async function submit(form) {
    errorBox.hidden = true;
    let request;
    try {
      request = buildRequest(form);
    } catch (err) {
      M.showError(errorBox, err);
      form.querySelector(".status").textContent = err.message;
      return;
    }
    if (request.needsConsent && !(await ensureConsent())) return;
    setBusy(form, true, "Analysing…");
    try {
      let data;
      try {
        data = await M.api("POST", request.url, request.json !== undefined ? { json: request.json } : { form: request.form });
      } catch (err) {
        if (err.code === "consent_required") {
          hasConsent = false;
          if (!(await ensureConsent())) throw err;
          data = await M.api("POST", request.url, request.json !== undefined ? { json: request.json } : { form: request.form });
        } else {
          throw err;
        }
      }
      const prediction = (data && data.prediction) || data;
      setBusy(form, false, "Done: " + prediction.emotion + ".");
      M.renderPrediction(resultBox, prediction, request.media, { link: true, heading: "Result" });
      resultBox.scrollIntoView({ behavior: "smooth", block: "start" });
      const heading = resultBox.querySelector("h2");
      if (heading) heading.focus({ preventScroll: true });
    } catch (err) {
      setBusy(form, false, "");
      M.showError(errorBox, err, "The analysis failed:");
      errorBox.scrollIntoView({ block: "nearest" });
      form.querySelector(".status").textContent = "Failed: " + err.message;
    }
  }

  app.querySelectorAll(".predict-form").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      submit(form);
    });
  });
})();
