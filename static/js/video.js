/* Analyse page, "Video" tab: record webcam + microphone together with MediaRecorder (or take
 * a file), send it to POST /api/predict/video and draw the result with its timeline. The clip
 * stays in this tab's memory; the server analyses it and discards it. */
(function () {
  "use strict";

  const M = window.Moodlens;
  const form = document.getElementById("video-form");
  if (!form) return;
  const app = document.getElementById("analyse-app");
  const errorBox = document.getElementById("analyse-error");
  const resultBox = document.getElementById("result");
  const consentDialog = document.getElementById("consent-dialog");
  const fileInput = document.getElementById("video-file");
  const startBtn = document.getElementById("video-record-start");
  const stopBtn = document.getElementById("video-record-stop");
  const clearBtn = document.getElementById("video-clear");
  const live = document.getElementById("video-live");
  const playback = document.getElementById("video-playback");
  const chosen = document.getElementById("video-chosen");
  const indicator = document.getElementById("video-recording");
  const timer = document.getElementById("video-timer");
  const status = document.getElementById("video-status");
  const submitBtn = document.getElementById("video-submit");
  const maxSeconds = Number(form.dataset.maxSeconds) || 60;

  let clip = null; // { blob, name }
  let recorder = null;
  let stream = null;
  let ticker = null;

  function setClip(blob, name, description) {
    clip = blob ? { blob: blob, name: name } : null;
    if (playback.src) URL.revokeObjectURL(playback.src);
    if (blob) {
      playback.src = URL.createObjectURL(blob);
      playback.hidden = false;
      chosen.textContent = description;
    } else {
      playback.removeAttribute("src");
      playback.hidden = true;
      chosen.textContent = "";
    }
    clearBtn.hidden = !blob;
    form.dataset.ready = blob ? "true" : "false";
  }

  async function ensureConsent() {
    if (app.dataset.hasConsent === "true") return true;
    if ((await M.ask(consentDialog)) !== "agree") {
      M.showMessage(errorBox, "Video analysis reads your face and voice, so it needs your consent first.", "warning");
      return false;
    }
    await M.api("PUT", "/api/user/consent", { json: { consent: true } });
    app.dataset.hasConsent = "true";
    return true;
  }

  fileInput.addEventListener("change", function () {
    const file = fileInput.files && fileInput.files[0];
    if (file) setClip(file, file.name, "Chosen: " + file.name + " (" + M.formatBytes(file.size) + ")");
  });

  function stopTracks() {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    live.srcObject = null;
    live.hidden = true;
  }

  startBtn.addEventListener("click", async function () {
    errorBox.hidden = true;
    if (!(await ensureConsent())) return;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: true });
    } catch (err) {
      chosen.textContent = "The webcam and microphone could not be opened (" + (err.name || err) + "). Check the browser's permissions, or choose a file.";
      return;
    }
    live.srcObject = stream;
    live.hidden = false;
    const types = ["video/webm;codecs=vp8,opus", "video/webm", "video/mp4"];
    const type = types.find((t) => window.MediaRecorder && MediaRecorder.isTypeSupported(t)) || "";
    recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    const chunks = [];
    recorder.addEventListener("dataavailable", (e) => e.data && e.data.size && chunks.push(e.data));
    recorder.addEventListener("stop", function () {
      clearInterval(ticker);
      indicator.hidden = true;
      stopBtn.hidden = true;
      startBtn.hidden = false;
      stopTracks();
      const blob = new Blob(chunks, { type: recorder.mimeType || "video/webm" });
      const ext = (recorder.mimeType || "").includes("mp4") ? "mp4" : "webm";
      setClip(blob, "recording." + ext, "Recorded " + timer.textContent + " of video (" + M.formatBytes(blob.size) + ").");
    });
    const started = Date.now();
    timer.textContent = "0:00";
    ticker = setInterval(function () {
      const seconds = Math.floor((Date.now() - started) / 1000);
      timer.textContent = Math.floor(seconds / 60) + ":" + String(seconds % 60).padStart(2, "0");
      if (seconds >= maxSeconds && recorder.state === "recording") recorder.stop();
    }, 250);
    recorder.start(250);
    startBtn.hidden = true;
    stopBtn.hidden = false;
    indicator.hidden = false;
    chosen.textContent = "Recording… press “Stop recording” when done.";
  });

  stopBtn.addEventListener("click", function () {
    if (recorder && recorder.state === "recording") recorder.stop();
  });

  clearBtn.addEventListener("click", function () {
    fileInput.value = "";
    setClip(null);
  });

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    errorBox.hidden = true;
    if (!clip) {
      status.textContent = "Record or choose a clip first.";
      return;
    }
    try {
      if (!(await ensureConsent())) return;
    } catch (err) {
      M.showError(errorBox, err, "Your consent could not be saved:");
      return;
    }
    const body = new FormData();
    body.append("video", clip.blob, clip.name);
    submitBtn.disabled = true;
    form.setAttribute("aria-busy", "true");
    status.className = "status busy";
    status.textContent = "Analysing the clip…";
    try {
      const prediction = await M.api("POST", "/api/predict/video", { form: body });
      status.className = "status";
      status.textContent = "Done: " + prediction.emotion + ".";
      M.renderPrediction(resultBox, prediction, null, { link: true, heading: "Result" });
      resultBox.scrollIntoView({ behavior: "smooth", block: "start" });
    } catch (err) {
      status.className = "status";
      status.textContent = "Failed: " + err.message;
      M.showError(errorBox, err, "The analysis failed:");
    } finally {
      submitBtn.disabled = false;
      form.setAttribute("aria-busy", "false");
    }
  });
})();
