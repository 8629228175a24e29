/* Stored result page: load GET /api/predictions/<id>, draw it, offer deletion. */
(function () {
  "use strict";

  const M = window.Moodlens;
  const view = document.getElementById("prediction-view");
  if (!view) return;
  const id = view.dataset.predictionId;
  const errorBox = document.getElementById("prediction-error");
  const deleteButton = document.getElementById("delete-prediction");
  const dialog = document.getElementById("delete-dialog");

  M.api("GET", "/api/predictions/" + encodeURIComponent(id))
    .then(function (data) {
      M.renderPrediction(view, (data && data.prediction) || data, null, { heading: "Summary" });
    })
    .catch(function (err) {
      M.clear(view);
      deleteButton.hidden = true;
      M.showError(errorBox, err, err.status === 404 ? "There is no result #" + id + " in your history." : "The result could not be loaded:");
    });

  deleteButton.addEventListener("click", async function () {
    dialog.querySelector(".delete-what").textContent = "#" + id;
    if ((await M.ask(dialog)) !== "confirm") return;
    try {
      await M.api("DELETE", "/api/predictions/" + encodeURIComponent(id));
      window.location.assign("/history?deleted=" + encodeURIComponent(id));
    } catch (err) {
      M.showError(errorBox, err, "The result could not be deleted:");
    }
  });
})();
