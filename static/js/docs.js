/* API docs: render /api/openapi.json as readable, keyboard-friendly sections. */
(function () {
  "use strict";

  const M = window.Moodlens;
  const root = document.getElementById("docs");
  if (!root) return;
  const METHODS = ["get", "post", "put", "patch", "delete"];
  let spec = null;

  function resolve(schema) {
    let s = schema;
    let guard = 0;
    while (s && s.$ref && guard++ < 10) {
      const path = s.$ref.replace(/^#\//, "").split("/");
      s = path.reduce((node, key) => (node ? node[key] : undefined), spec);
    }
    return s || {};
  }

  function schemaText(schema, depth) {
    const s = resolve(schema);
    const d = depth || 0;
    if (d > 4) return "…";
    if (s.type === "array") return "[" + schemaText(s.items || {}, d + 1) + "]";
    if (s.properties) {
      const pad = "  ".repeat(d + 1);
      const required = s.required || [];
      const lines = Object.keys(s.properties).map(function (key) {
        const prop = resolve(s.properties[key]);
        const desc = prop.description ? "  // " + prop.description : "";
        return pad + key + (required.includes(key) ? "" : "?") + ": " + schemaText(prop, d + 1) + desc;
      });
      return "{\n" + lines.join("\n") + "\n" + "  ".repeat(d) + "}";
    }
    if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
    const parts = [s.type || (s.oneOf || s.anyOf ? (s.oneOf || s.anyOf).map((x) => schemaText(x, d + 1)).join(" | ") : "any")];
    if (s.format) parts.push("(" + s.format + ")");
    return parts.join(" ");
  }

  function operation(path, method, op) {
    const details = M.el("details", { class: "endpoint" });
    const summary = M.el("summary", {}, [
      M.el("span", { class: "method " + method, text: method.toUpperCase() }),
      M.el("span", { class: "path", text: path }),
      M.el("span", { class: "muted", text: op.summary || "" }),
    ]);
    details.appendChild(summary);
    const body = M.el("div", { class: "body" });
    if (op.description) body.appendChild(M.el("p", { text: op.description }));
    const params = op.parameters || [];
    if (params.length) {
      body.appendChild(M.el("h4", { text: "Parameters" }));
      const ul = M.el("ul");
      params.forEach(function (p) {
        const param = resolve(p);
        ul.appendChild(
          M.el("li", {}, [
            M.el("code", { text: param.name }),
            " (" + param.in + (param.required ? ", required" : "") + ") " + schemaText(param.schema || {}) + (param.description ? " — " + param.description : ""),
          ])
        );
      });
      body.appendChild(ul);
    }
    if (op.requestBody) {
      const rb = resolve(op.requestBody);
      body.appendChild(M.el("h4", { text: "Request body" }));
      Object.keys(rb.content || {}).forEach(function (type) {
        body.appendChild(M.el("p", {}, [M.el("code", { text: type })]));
        body.appendChild(M.el("pre", { text: schemaText((rb.content[type] || {}).schema || {}) }));
      });
    }
    const responses = op.responses || {};
    if (Object.keys(responses).length) {
      body.appendChild(M.el("h4", { text: "Responses" }));
      const dl = M.el("dl", { class: "kv" });
      Object.keys(responses).forEach(function (code) {
        const r = resolve(responses[code]);
        dl.appendChild(M.el("dt", { text: code }));
        const dd = M.el("dd", { text: r.description || "" });
        const json = r.content && r.content["application/json"];
        if (json && json.schema) dd.appendChild(M.el("pre", { text: schemaText(json.schema) }));
        dl.appendChild(dd);
      });
      body.appendChild(dl);
    }
    const security = op.security !== undefined ? op.security : spec.security;
    if (security && !security.length) body.appendChild(M.el("p", { class: "small muted", text: "No authentication needed." }));
    details.appendChild(body);
    return details;
  }

  function render() {
    M.clear(root);
    const info = spec.info || {};
    root.appendChild(M.el("p", {}, [M.el("strong", { text: (info.title || "API") + " " + (info.version || "") }), info.description ? " — " + info.description : ""]));
    const groups = {};
    Object.keys(spec.paths || {}).forEach(function (path) {
      const item = spec.paths[path];
      METHODS.forEach(function (method) {
        if (!item[method]) return;
        const tag = (item[method].tags && item[method].tags[0]) || "General";
        (groups[tag] = groups[tag] || []).push([path, method, item[method]]);
      });
    });
    Object.keys(groups).forEach(function (tag) {
      const section = M.el("section", { class: "card", "aria-label": tag });
      section.appendChild(M.el("h2", { text: tag }));
      groups[tag].forEach((g) => section.appendChild(operation(g[0], g[1], g[2])));
      root.appendChild(section);
    });
    document.body.dataset.docsLoaded = "true";
  }

  M.api("GET", "/api/openapi.json", { allowUnauthenticated: true })
    .then(function (data) {
      spec = data || {};
      render();
    })
    .catch(function (err) {
      M.clear(root);
      M.showError(document.getElementById("docs-error"), err, "The API description could not be loaded:");
    });
})();
