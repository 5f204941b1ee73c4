// wagate dashboard: live updates for the pages the server renders. Reads its
// words from the page's JSON block; talks only to this server (the org's
// event stream and the overview JSON). Works on pages that are complete
// without it: this script only keeps them current.
"use strict";

(function () {
  const words = JSON.parse((document.getElementById("words") || {}).textContent || "{}");
  const lang = document.body.dataset.lang || "en";
  const T = (k) => words[k] || k;
  const $ = (id) => document.getElementById(id);

  const phoneText = (p) => (p ? "+" + p : "—");

  function duration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return T("dur.s").replace("{n}", s);
    if (s < 3600) return T("dur.m").replace("{n}", Math.floor(s / 60));
    if (s < 86400) return T("dur.h").replace("{n}", Math.floor(s / 3600));
    return T("dur.d").replace("{n}", Math.floor(s / 86400));
  }

  function localTime(iso) {
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString(lang);
  }

  // Times: "in this state for 3 min" ticks; absolute times in local format.
  function tick() {
    for (const el of document.querySelectorAll("time.since")) {
      const t = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(t)) el.textContent = duration(Date.now() - t);
    }
  }
  function localize(root) {
    for (const el of root.querySelectorAll("time.at")) {
      el.textContent = localTime(el.getAttribute("datetime"));
    }
  }

  function setBadge(el, state) {
    el.className = "badge s-" + state;
    el.dataset.state = state;
    el.textContent = T("state." + state);
  }

  // ---- the org page ----------------------------------------------------

  function orgPage(root) {
    const org = root.dataset.org;
    let phone = ($("phone").textContent || "").replace(/^\+/, "");
    if (phone === "—") phone = "";
    let qrLeft = 0;
    let retryLeft = null;

    function show(el, on) {
      if (el) el.hidden = !on;
    }

    function apply(v) {
      const state = v.state;
      root.dataset.state = state;
      if ("phone_number" in v) phone = v.phone_number || "";
      setBadge(document.querySelector("#status-card .badge"), state);
      $("sentence").textContent = T("say." + state).replace("{phone}", phoneText(phone));
      if (v.detail !== undefined) $("detail").textContent = v.detail;
      $("phone").textContent = phoneText(phone);
      $("since").setAttribute("datetime", v.since || new Date().toISOString());
      if (typeof v.queued_messages === "number") $("queued").textContent = v.queued_messages;
      retryLeft = typeof v.next_retry_in_ms === "number" ? v.next_retry_in_ms : null;
      show($("retry"), retryLeft !== null);
      show($("retry-label"), retryLeft !== null);
      show($("link-card"), state !== "connected");
      const needsLink = ["new", "needs_qr", "logged_out", "pairing"].includes(state);
      $("connect").textContent = needsLink ? T("org.link_qr") : T("org.reconnect");
      show($("use-code"), needsLink);
      show($("connect-form"), state !== "pairing");
      if (state !== "pairing") {
        show($("qr-box"), false);
        show($("qr-waiting"), false);
        show($("code-box"), false);
        qrLeft = 0;
      } else if (v.qr_available === false || $("qr-box").hidden) {
        show($("qr-waiting"), $("qr-box").hidden && $("code-box").hidden);
      }
      if (v.pair_code) showCode(v.pair_code);
      countdown();
      tick();
    }

    function showQr(data, id) {
      const img = $("qr");
      img.src = "/ui/orgs/" + encodeURIComponent(org) + "/qr.svg?v=" + encodeURIComponent(id || Date.now());
      qrLeft = data.expires_in_ms || 0;
      show($("qr-box"), true);
      show($("qr-waiting"), false);
      show($("link-card"), true);
      countdown();
    }

    function showCode(code) {
      $("pair-code").textContent = code;
      show($("code-box"), true);
      show($("qr-waiting"), false);
    }

    function countdown() {
      const el = $("qr-countdown");
      if (qrLeft > 0) {
        el.textContent = T("org.qr_expires").replace("{n}", Math.ceil(qrLeft / 1000));
      } else if (!$("qr-box").hidden) {
        el.textContent = T("org.qr_waiting");
      }
      if (retryLeft !== null) $("retry").textContent = Math.ceil(Math.max(0, retryLeft) / 1000) + " s";
    }

    function addHistory(data) {
      const body = document.querySelector("#history tbody");
      const tr = document.createElement("tr");
      const when = document.createElement("td");
      const t = document.createElement("time");
      t.className = "at";
      t.setAttribute("datetime", new Date().toISOString());
      t.textContent = localTime(new Date().toISOString());
      when.appendChild(t);
      const st = document.createElement("td");
      const b = document.createElement("span");
      setBadge(b, data.state);
      st.appendChild(b);
      const why = document.createElement("td");
      why.textContent = data.detail || "";
      tr.append(when, st, why);
      body.prepend(tr);
      while (body.children.length > 50) body.lastElementChild.remove();
    }

    function messageStatus(data) {
      let row = $("m-" + data.id);
      const queued = $("queued");
      if (!row) {
        if (!data.to) return;
        row = document.createElement("tr");
        row.id = "m-" + data.id;
        const when = document.createElement("td");
        const t = document.createElement("time");
        t.className = "at";
        t.textContent = localTime(new Date().toISOString());
        when.appendChild(t);
        const to = document.createElement("td");
        to.textContent = "+" + data.to;
        const text = document.createElement("td");
        text.className = "text";
        const st = document.createElement("td");
        const span = document.createElement("span");
        span.className = "msg";
        st.appendChild(span);
        row.append(when, to, text, st);
        document.querySelector("#messages tbody").prepend(row);
        show($("no-messages"), false);
      }
      const span = row.querySelector(".msg");
      const before = span.dataset.status;
      if (before === data.status) return;
      if (data.status === "queued" && before !== "queued") queued.textContent = (+queued.textContent || 0) + 1;
      if (before === "queued" && data.status !== "queued") queued.textContent = Math.max(0, (+queued.textContent || 0) - 1);
      span.className = "msg m-" + data.status;
      span.dataset.status = data.status;
      span.textContent = T("msg." + data.status);
      if (data.error) span.title = data.error;
      // Once it has left (or ended), there is nothing to cancel.
      if (data.status !== "scheduled" && data.status !== "queued") {
        row.querySelectorAll("form.cancel, .due").forEach((el) => el.remove());
      }
    }

    // Everything after the event the page was rendered at; on reconnects the
    // browser sends Last-Event-ID itself.
    const after = ($("page") || {}).dataset ? $("page").dataset.after : "";
    const es = new EventSource(
      "/ui/orgs/" + encodeURIComponent(org) + "/events" + (after ? "?after=" + encodeURIComponent(after) : ""),
    );
    const live = $("live-note");
    const parse = (e) => {
      try {
        return JSON.parse(e.data);
      } catch (_) {
        return null;
      }
    };
    es.addEventListener("open", () => show(live, false));
    es.addEventListener("error", () => show(live, true));
    es.addEventListener("status", (e) => {
      const v = parse(e);
      if (v) apply(v);
    });
    es.addEventListener("state", (e) => {
      const v = parse(e);
      if (!v) return;
      apply(v);
      addHistory(v);
    });
    es.addEventListener("qr", (e) => {
      const v = parse(e);
      if (v && v.qr) showQr(v, e.lastEventId);
    });
    es.addEventListener("pair_code", (e) => {
      const v = parse(e);
      if (v && v.pair_code) showCode(v.pair_code);
    });
    es.addEventListener("message.status", (e) => {
      const v = parse(e);
      if (v) messageStatus(v);
    });

    const cd = $("qr-countdown");
    if (cd && cd.dataset.ms) qrLeft = +cd.dataset.ms;
    const rt = $("retry");
    if (rt && rt.dataset.ms) retryLeft = +rt.dataset.ms;
    setInterval(() => {
      qrLeft = Math.max(0, qrLeft - 1000);
      if (retryLeft !== null) retryLeft = Math.max(0, retryLeft - 1000);
      countdown();
    }, 1000);
  }

  // ---- the admin overview -----------------------------------------------

  function overview() {
    async function refresh() {
      try {
        const r = await fetch("/ui/overview.json", { credentials: "same-origin" });
        if (!r.ok) return;
        const body = await r.json();
        for (const o of body.orgs) {
          const row = document.querySelector('tr[data-org="' + CSS.escape(o.id) + '"]');
          if (!row) continue;
          setBadge(row.querySelector(".badge"), o.status.state);
          row.querySelector(".phone").textContent = phoneText(o.status.phone_number);
          row.querySelector("time.since").setAttribute("datetime", o.status.since);
          row.querySelector(".queued").textContent = o.status.queued_messages || 0;
        }
        tick();
      } catch (_) {
        // The next round tries again.
      }
    }
    setInterval(refresh, 5000);
  }

  localize(document);
  tick();
  setInterval(tick, 1000);
  const page = document.body.dataset.page;
  if (page === "org" && $("org")) orgPage($("org"));
  if (page === "overview") overview();
})();
