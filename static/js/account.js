/* Account page: profile, consent toggle, API tokens (shown once), account deletion. */
(function () {
  "use strict";

  const M = window.Moodlens;
  const errorBox = document.getElementById("account-error");
  if (!errorBox) return;
  const consentStatus = document.getElementById("consent-status");
  const consentToggle = document.getElementById("consent-toggle");
  const tokenForm = document.getElementById("token-form");
  const tokenBody = document.querySelector("#token-table tbody");
  const created = document.getElementById("token-created");

  function userFrom(data) {
    return (data && data.user) || data || {};
  }

  function showConsent(given) {
    consentStatus.dataset.consent = given ? "true" : "false";
    consentStatus.textContent = given
      ? "You have agreed that your photos and recordings may be analysed (they are never kept)."
      : "You have not given consent: face and voice analysis are off; text analysis works.";
    consentToggle.textContent = given ? "Withdraw consent" : "Give consent";
  }

  M.api("GET", "/api/user/profile")
    .then(function (data) {
      const user = userFrom(data);
      if (user.name) document.getElementById("profile-name").textContent = user.name;
      if (user.email) document.getElementById("profile-email").textContent = user.email;
      document.getElementById("profile-created").textContent = M.formatDateTime(user.created_at);
      if (user.consent_given !== undefined) showConsent(Boolean(user.consent_given));
    })
    .catch((err) => M.showError(errorBox, err, "Your profile could not be loaded:"));

  consentToggle.addEventListener("click", async function () {
    const give = consentStatus.dataset.consent !== "true";
    try {
      const data = await M.api("PUT", "/api/user/consent", { json: { consent: give } });
      const user = userFrom(data);
      showConsent(user.consent_given !== undefined ? Boolean(user.consent_given) : give);
      M.announce(give ? "Consent given." : "Consent withdrawn.");
    } catch (err) {
      M.showError(errorBox, err, "Your consent could not be changed:");
    }
  });

  function tokenRow(token) {
    const active = token.active !== undefined ? token.active : !token.revoked_at;
    const actions = M.el("td");
    if (active) {
      const revoke = M.el("button", { type: "button", class: "btn danger secondary", text: "Revoke" });
      revoke.setAttribute("aria-label", "Revoke token " + token.name);
      revoke.addEventListener("click", async function () {
        try {
          await M.api("DELETE", "/api/tokens/" + encodeURIComponent(token.id));
          M.announce("Token " + token.name + " revoked.");
          loadTokens();
        } catch (err) {
          M.showError(errorBox, err, "The token could not be revoked:");
        }
      });
      actions.appendChild(revoke);
    }
    return M.el("tr", { "data-token-id": token.id }, [
      M.el("td", { text: token.name }),
      M.el("td", {}, [M.el("code", { text: (token.prefix || "") + "…" })]),
      M.el("td", { text: M.formatDateTime(token.created_at) }),
      M.el("td", { text: token.last_used_at ? M.formatDateTime(token.last_used_at) : "never" }),
      M.el("td", {}, [M.el("span", { class: "badge " + (active ? "ok" : "neutral"), text: active ? "active" : "revoked" })]),
      actions,
    ]);
  }

  async function loadTokens() {
    try {
      const data = await M.api("GET", "/api/tokens");
      const tokens = (data && (data.tokens || data.items)) || (Array.isArray(data) ? data : []);
      M.clear(tokenBody);
      if (!tokens.length) tokenBody.appendChild(M.el("tr", {}, [M.el("td", { colspan: 6, text: "No tokens yet." })]));
      tokens.forEach((t) => tokenBody.appendChild(tokenRow(t)));
    } catch (err) {
      M.showError(errorBox, err, "Your tokens could not be loaded:");
    }
  }

  tokenForm.addEventListener("submit", async function (event) {
    event.preventDefault();
    const name = tokenForm.elements.name.value.trim();
    try {
      const data = await M.api("POST", "/api/tokens", { json: { name: name || "API token" } });
      const token = (data && data.token && typeof data.token === "object" ? data.token : data) || {};
      const value = typeof data.token === "string" ? data.token : token.value || token.token;
      document.getElementById("token-created-name").textContent = data.name || token.name || name;
      document.getElementById("token-value").textContent = value;
      created.hidden = false;
      tokenForm.reset();
      loadTokens();
      M.announce("Token created. Copy it now, it will not be shown again.");
    } catch (err) {
      M.showError(errorBox, err, "The token could not be created:");
    }
  });
  loadTokens();

  const deleteDialog = document.getElementById("delete-account-dialog");
  const confirmText = document.getElementById("delete-account-confirm-text");
  document.getElementById("delete-account").addEventListener("click", async function () {
    confirmText.value = "";
    if ((await M.ask(deleteDialog)) !== "confirm") return;
    if (confirmText.value.trim().toUpperCase() !== "DELETE") {
      M.showMessage(errorBox, "Nothing was deleted: type DELETE in the dialog to confirm.", "warning");
      return;
    }
    try {
      await M.api("DELETE", "/api/user");
      window.location.assign("/?account_deleted=1");
    } catch (err) {
      M.showError(errorBox, err, "Your account could not be deleted:");
    }
  });
})();
