// The chat playground (templates/admin/conversations/playground.html): a file, not an inline script, so the
// admin runs under a Content-Security-Policy with script-src 'self' (agent_project/security.py). The page gives
// its URL and the default user id in the script tag's data attributes.
(function (script) {
  const form = document.getElementById("pg-form");
  const log = document.getElementById("pg-log");
  const statusEl = document.getElementById("pg-status");
  const sendUrl = script.dataset.sendUrl;
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;

  function turn(role, bubbles, meta) {
    const box = document.createElement("div");
    box.className = "turn " + role;
    for (const text of bubbles) {
      const b = document.createElement("div");
      b.className = "bubble";
      b.textContent = text;
      box.appendChild(b);
    }
    if (meta) {
      const m = document.createElement("div");
      m.className = "meta";
      m.textContent = meta;
      box.appendChild(m);
    }
    log.appendChild(box);
    log.scrollTop = log.scrollHeight;
  }

  function showSources(rows) {
    const body = document.querySelector("#pg-sources tbody");
    body.innerHTML = "";
    if (!rows.length) {
      body.innerHTML = '<tr><td colspan="3" class="meta">Nothing retrieved.</td></tr>';
      return;
    }
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.className = "source" + (r.used ? " used" : " unused");
      for (const value of [r.score.toFixed(3) + (r.used ? "" : " (below threshold)"), r.title, r.text]) {
        const td = document.createElement("td");
        td.textContent = value;
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  function showTools(calls) {
    const body = document.querySelector("#pg-tools tbody");
    body.innerHTML = "";
    if (!calls || !calls.length) {
      body.innerHTML = '<tr><td colspan="4" class="meta">No tool was called for this reply.</td></tr>';
      return;
    }
    for (const c of calls) {
      const tr = document.createElement("tr");
      tr.className = "tool-call" + (c.error ? " failed" : "");
      const outcome = c.error ? "error " + c.error.code + ": " + c.error.message : JSON.stringify(c.result);
      for (const value of [c.name, JSON.stringify(c.arguments), outcome, String(Math.round(c.duration_ms))]) {
        const td = document.createElement("td");
        td.textContent = value;
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  document.getElementById("pg-new").addEventListener("click", function () {
    document.getElementById("pg-user").value = script.dataset.defaultUser + "-" + Math.random().toString(36).slice(2, 8);
    log.innerHTML = "";
  });

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const message = document.getElementById("pg-message").value.trim();
    if (!message) return;
    turn("user", [message]);
    document.getElementById("pg-message").value = "";
    statusEl.textContent = "waiting for the agent…";
    const payload = {
      tenant_id: document.getElementById("pg-tenant").value,
      channel: document.getElementById("pg-channel").value,
      locale: document.getElementById("pg-locale").value,
      user_id: document.getElementById("pg-user").value,
      message: message,
    };
    try {
      const response = await fetch(sendUrl, {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
        body: JSON.stringify(payload),
      });
      const body = await response.json();
      if (!response.ok) {
        statusEl.innerHTML = "";
        const e = document.createElement("span");
        e.className = "error";
        e.textContent = body.error.code + ": " + body.error.message;
        statusEl.appendChild(e);
        return;
      }
      turn("assistant", body.bubbles, body.provider + " / " + body.model + " · " + body.usage.total_tokens +
           " tokens · " + Math.round(body.timings_ms.total_ms) + " ms · " +
           (body.within_working_hours ? "open now" : "closed now"));
      showSources(body.retrieved);
      showTools(body.tool_calls);
      document.getElementById("pg-prompt").textContent = body.prompt;
      statusEl.textContent = "";
    } catch (err) {
      statusEl.textContent = "Request failed: " + err;
    }
  });
})(document.currentScript);
