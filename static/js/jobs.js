/* Batch jobs page: submit a ZIP or CSV (POST /api/jobs), list the jobs, and on a job's page
 * poll GET /api/jobs/<id> for the progress bar, then show the results table from the CSV. */
(function () {
  "use strict";

  const M = window.Moodlens;
  const el = M.el;
  const errorBox = document.getElementById("jobs-error");

  function describe(job) {
    let text = job.done + " of " + job.total + " items done (" + Math.round(job.progress * 100) + " %)";
    if (job.failed) text += ", " + job.failed + " failed";
    text += " · " + job.status;
    if (job.eta_seconds !== null && job.eta_seconds !== undefined) text += " · about " + Math.ceil(job.eta_seconds) + " s left";
    return text;
  }

  /* ----- the list and the form ----- */
  const form = document.getElementById("job-form");
  const list = document.getElementById("job-list");
  async function loadList() {
    try {
      const data = await M.api("GET", "/api/jobs");
      M.clear(list);
      if (!data.items.length) list.appendChild(el("li", { class: "muted", text: "No jobs yet." }));
      data.items.forEach(function (job) {
        list.appendChild(
          el("li", {}, [
            el("a", { href: "/jobs/" + job.id, text: "Job #" + job.id + (job.file_name ? " — " + job.file_name : "") }),
            " ",
            el("span", { class: "small muted", text: describe(job) }),
          ])
        );
      });
    } catch (err) {
      M.showError(errorBox, err, "The jobs could not be loaded:");
    }
  }
  if (form) {
    loadList();
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      errorBox.hidden = true;
      const input = document.getElementById("job-file");
      const statusText = document.getElementById("job-form-status");
      const file = input.files && input.files[0];
      if (!file) {
        statusText.textContent = "Choose a ZIP or CSV file first.";
        return;
      }
      const body = new FormData();
      body.append("file", file, file.name);
      statusText.textContent = "Uploading…";
      try {
        const job = await M.api("POST", "/api/jobs", { form: body });
        window.location.assign("/jobs/" + job.id);
      } catch (err) {
        statusText.textContent = "Failed: " + err.message;
        M.showError(errorBox, err, "The job could not be started:");
      }
    });
  }

  /* ----- one job ----- */
  const view = document.getElementById("job-view");
  if (!view) return;
  const id = view.dataset.jobId;
  const bar = document.getElementById("job-progress");
  const text = document.getElementById("job-progress-text");
  const cancel = document.getElementById("job-cancel");
  const tbody = document.querySelector("#job-results tbody");

  function parseCsv(textValue) {
    const rows = [];
    let row = [];
    let cell = "";
    let quoted = false;
    const s = textValue.replace(/^\ufeff/, "");
    for (let i = 0; i < s.length; i++) {
      const c = s[i];
      if (quoted) {
        if (c === '"' && s[i + 1] === '"') {
          cell += '"';
          i++;
        } else if (c === '"') quoted = false;
        else cell += c;
      } else if (c === '"') quoted = true;
      else if (c === ",") {
        row.push(cell);
        cell = "";
      } else if (c === "\n") {
        row.push(cell.replace(/\r$/, ""));
        rows.push(row);
        row = [];
        cell = "";
      } else cell += c;
    }
    if (cell || row.length) rows.push(row.concat([cell]));
    return rows;
  }

  async function loadResults() {
    const response = await fetch("/api/jobs/" + encodeURIComponent(id) + "/results.csv", { credentials: "same-origin" });
    if (!response.ok) return;
    const rows = parseCsv(await response.text());
    const header = rows.shift() || [];
    const at = (name) => header.indexOf(name);
    M.clear(tbody);
    rows.forEach(function (r) {
      if (r.length < header.length) return;
      const confidence = r[at("confidence")];
      tbody.appendChild(
        el("tr", {}, [
          el("td", { text: r[at("item")] }),
          el("td", {}, [r[at("prediction_id")] ? el("a", { href: "/predictions/" + r[at("prediction_id")], text: r[at("name")] }) : r[at("name")]]),
          el("td", { text: r[at("emotion")] || "—" }),
          el("td", { class: "num", text: confidence ? M.percent(Number(confidence)) : "" }),
          el("td", { text: r[at("error")] }),
        ])
      );
    });
  }

  async function poll() {
    let job;
    try {
      job = await M.api("GET", "/api/jobs/" + encodeURIComponent(id));
    } catch (err) {
      text.classList.remove("busy");
      M.showError(errorBox, err, err.status === 404 ? "There is no job #" + id + "." : "The job could not be loaded:");
      return;
    }
    bar.value = Math.round(job.progress * 100);
    bar.textContent = bar.value + " %";
    view.dataset.status = job.status;
    view.dataset.progress = String(bar.value);
    text.textContent = describe(job) + (job.error ? " — " + job.error.message : "");
    text.classList.toggle("busy", job.status === "queued" || job.status === "running");
    cancel.hidden = !(job.status === "queued" || job.status === "running");
    await loadResults();
    if (job.status === "queued" || job.status === "running") setTimeout(poll, 1000);
    else M.announce("The job is " + job.status + ".");
  }
  cancel.addEventListener("click", async function () {
    try {
      await M.api("DELETE", "/api/jobs/" + encodeURIComponent(id));
    } catch (err) {
      M.showError(errorBox, err, "The job could not be cancelled:");
    }
  });
  poll();
})();
