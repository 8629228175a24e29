/* History page: filterable, paginated list from GET /api/predictions, with deletion. */
(function () {
  "use strict";

  const M = window.Moodlens;
  const form = document.getElementById("history-filters");
  if (!form) return;
  const tbody = document.querySelector("#history-table tbody");
  const summary = document.getElementById("history-summary");
  const errorBox = document.getElementById("history-error");
  const prev = document.getElementById("page-prev");
  const next = document.getElementById("page-next");
  const info = document.getElementById("page-info");
  const dialog = document.getElementById("delete-dialog");
  const downloadLink = document.getElementById("download-csv");
  const PER_PAGE = 20;
  let page = 1;
  let pages = 1;

  function filters() {
    const params = new URLSearchParams();
    ["emotion", "modality", "date_from", "date_to"].forEach(function (name) {
      const value = form.elements[name].value;
      if (value) params.set(name, value);
    });
    // The date boxes hold the user's local days; the server stores UTC times. The zone's name
    // lets the server give each end of the range its own offset (daylight saving).
    if (params.has("date_from") || params.has("date_to")) {
      let zone = "";
      try {
        zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
      } catch (err) {
        zone = "";
      }
      if (zone) params.set("tz", zone);
      else params.set("tz_offset", String(new Date().getTimezoneOffset()));
    }
    return params;
  }

  function syncFromUrl() {
    const params = new URLSearchParams(window.location.search);
    ["emotion", "modality", "date_from", "date_to"].forEach(function (name) {
      if (params.has(name)) form.elements[name].value = params.get(name);
    });
    page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
    if (params.has("deleted")) M.showMessage(errorBox, "Result #" + params.get("deleted") + " was deleted.", "success");
  }

  function modalitiesUsed(item) {
    return (item.modalities || [])
      .filter((m) => m.status === "used")
      .map((m) => M.MODALITY_NAMES[m.modality] || m.modality)
      .join(", ");
  }

  /* The recording's words, when it was transcribed (personal data, shown like a typed text). */
  function transcriptExcerpt(item) {
    const words = item.transcript && item.transcript.text;
    if (!words) return "";
    const short = words.length > 80 ? words.slice(0, 79) + "…" : words;
    return M.el("span", { class: "small muted transcript-excerpt", "data-testid": "history-transcript", text: " · “" + short + "”" });
  }

  function row(item) {
    const when = M.formatDateTime(item.created_at);
    const open = M.el("a", { href: "/predictions/" + encodeURIComponent(item.id), text: when || "#" + item.id });
    open.setAttribute("aria-label", "Open result #" + item.id + " from " + when);
    const del = M.el("button", { type: "button", class: "btn danger secondary delete-row", "data-id": item.id, text: "Delete" });
    del.setAttribute("aria-label", "Delete result #" + item.id + " from " + when);
    del.addEventListener("click", function () {
      confirmDelete(item, when);
    });
    const emotion = M.el("td");
    emotion.appendChild(M.emotionLabel(item.emotion));
    return M.el("tr", { "data-id": item.id, "data-emotion": item.emotion }, [
      M.el("td", {}, [open]),
      M.el("td", { text: M.KIND_NAMES[item.kind] || item.kind }),
      emotion,
      M.el("td", { class: "num", text: M.percent(item.confidence) }),
      M.el("td", {}, [modalitiesUsed(item), transcriptExcerpt(item)]),
      M.el("td", {}, [del]),
    ]);
  }

  async function load() {
    const params = filters();
    params.set("page", String(page));
    params.set("per_page", String(PER_PAGE));
    const shown = filters();
    if (page > 1) shown.set("page", String(page));
    window.history.replaceState(null, "", window.location.pathname + (shown.toString() ? "?" + shown.toString() : ""));
    const exportQuery = filters().toString();
    downloadLink.href = "/api/predictions/export.csv" + (exportQuery ? "?" + exportQuery : "");
    downloadLink.textContent = exportQuery ? "Download these results as CSV" : "Download CSV";
    tbody.setAttribute("aria-busy", "true");
    let data;
    try {
      data = await M.api("GET", "/api/predictions?" + params.toString());
    } catch (err) {
      M.showError(errorBox, err, "Your history could not be loaded:");
      tbody.setAttribute("aria-busy", "false");
      return;
    }
    M.clear(tbody);
    const items = data.items || [];
    pages = Math.max(1, data.pages || 1);
    if (!items.length) {
      tbody.appendChild(
        M.el("tr", {}, [
          M.el("td", { colspan: 6 }, [
            filters().toString() ? "No results match these filters. " : "No results yet. ",
            M.el("a", { href: "/analyse", text: "Analyse something" }),
          ]),
        ])
      );
    }
    items.forEach((item) => tbody.appendChild(row(item)));
    tbody.setAttribute("aria-busy", "false");
    const total = data.total || 0;
    summary.textContent = total + (total === 1 ? " result" : " results") + (filters().toString() ? " match the filters." : " in total.");
    info.textContent = "Page " + (data.page || page) + " of " + pages;
    prev.disabled = page <= 1;
    next.disabled = page >= pages;
    // A count, so scripts (and tests) can tell one completed load from the next.
    document.body.dataset.historyLoaded = String((Number(document.body.dataset.historyLoaded) || 0) + 1);
  }

  async function confirmDelete(item, when) {
    dialog.querySelector(".delete-what").textContent = "#" + item.id + " (" + item.emotion + ", " + when + ")";
    if ((await M.ask(dialog)) !== "confirm") return;
    try {
      await M.api("DELETE", "/api/predictions/" + encodeURIComponent(item.id));
      M.showMessage(errorBox, "Result #" + item.id + " was deleted.", "success");
      M.announce("Result deleted.");
      await load();
      if (page > pages) {
        page = pages;
        await load();
      }
    } catch (err) {
      M.showError(errorBox, err, "The result could not be deleted:");
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    errorBox.hidden = true;
    page = 1;
    load();
  });
  form.addEventListener("reset", function () {
    window.setTimeout(function () {
      page = 1;
      load();
    }, 0);
  });
  prev.addEventListener("click", function () {
    if (page > 1) {
      page--;
      load();
    }
  });
  next.addEventListener("click", function () {
    if (page < pages) {
      page++;
      load();
    }
  });

  syncFromUrl();
  load();
})();
