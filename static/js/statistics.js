/* Statistics page: charts (SVG) plus tables of GET /api/statistics. */
(function () {
  "use strict";

  const M = window.Moodlens;
  const summary = document.getElementById("stats-summary");
  if (!summary) return;

  function table(headers, rows, caption) {
    const t = M.el("table");
    t.appendChild(M.el("caption", { class: "visually-hidden", text: caption }));
    t.appendChild(M.el("thead", {}, [M.el("tr", {}, headers.map((h, i) => M.el("th", { scope: "col", class: i ? "num" : null, text: h })))]));
    const body = M.el("tbody");
    rows.forEach(function (r) {
      body.appendChild(M.el("tr", {}, r.map((c, i) => M.el("td", { class: i ? "num" : null, text: c }))));
    });
    t.appendChild(body);
    return t;
  }

  function render(stats) {
    const total = stats.total || 0;
    const byEmotion = stats.by_emotion || {};
    const byModality = stats.by_modality || {};
    const days = (stats.by_day || []).slice().sort((a, b) => (a.date < b.date ? -1 : 1));
    let top = null;
    M.EMOTIONS.forEach(function (e) {
      if ((byEmotion[e] || 0) > 0 && (top === null || byEmotion[e] > byEmotion[top])) top = e;
    });
    M.clear(summary);
    if (!total) {
      summary.appendChild(document.createTextNode("No results yet — the charts fill in as you analyse. "));
      summary.appendChild(M.el("a", { href: "/analyse", text: "Analyse something" }));
    } else {
      summary.textContent =
        total +
        (total === 1 ? " result" : " results") +
        "; most often " +
        top +
        " (" +
        byEmotion[top] +
        "). Average confidence " +
        M.percent(stats.average_confidence || 0, 0) +
        ". " +
        days.length +
        (days.length === 1 ? " day" : " days") +
        " with results.";
    }

    const emotionItems = M.EMOTIONS.map((e) => ({ label: e, value: byEmotion[e] || 0, color: M.COLORS[e] }));
    const count = (v) => String(v);
    const chartE = document.getElementById("chart-emotions");
    M.clear(chartE).appendChild(M.barChart(emotionItems, { max: Math.max(1, ...emotionItems.map((i) => i.value)), format: count, title: "Results per emotion", highlight: top }));
    M.clear(document.getElementById("table-emotions")).appendChild(
      table(["Emotion", "Results", "Share"], M.EMOTIONS.map((e) => [M.capitalise(e), String(byEmotion[e] || 0), total ? M.percent((byEmotion[e] || 0) / total, 0) : "–"]), "Results per emotion")
    );

    const modalityItems = M.MODALITIES.map((m) => ({ label: M.MODALITY_NAMES[m], value: byModality[m] || 0, color: M.MODALITY_COLORS[m] }));
    const chartM = document.getElementById("chart-modalities");
    M.clear(chartM).appendChild(M.barChart(modalityItems, { max: Math.max(1, ...modalityItems.map((i) => i.value)), format: count, title: "Results per modality", labelWidth: 72 }));
    M.clear(document.getElementById("table-modalities")).appendChild(
      table(["Modality", "Results"], M.MODALITIES.map((m) => [M.MODALITY_NAMES[m], String(byModality[m] || 0)]), "Results per modality")
    );

    const chartD = document.getElementById("chart-days");
    M.clear(chartD).appendChild(M.stackedDayChart(days, "Results per day, split by emotion"));
    M.clear(document.getElementById("table-days")).appendChild(
      table(
        ["Day", "Results"].concat(M.EMOTIONS.map(M.capitalise)),
        days.map((d) => [d.date, String(d.count)].concat(M.EMOTIONS.map((e) => String((d.by_emotion && d.by_emotion[e]) || 0)))),
        "Results per day and emotion"
      )
    );
    document.body.dataset.statsLoaded = "true";
  }

  M.api("GET", "/api/statistics")
    .then(render)
    .catch(function (err) {
      M.clear(summary);
      M.showError(document.getElementById("stats-error"), err, "Your statistics could not be loaded:");
    });
})();
