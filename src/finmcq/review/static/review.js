// finmcq review: actions as JSON fetch requests, the page re-rendered by the server and swapped
// in place (htmx-style, without a library), and the keyboard shortcuts. No build step.
"use strict";
(function () {
  const LETTERS = ["A", "B", "C", "D", "E", "F", "G"];

  function showMessage(text, isError) {
    const box = document.getElementById("message");
    if (!box) return;
    box.textContent = text;
    box.className = isError ? "error" : "ok";
    box.hidden = !text;
  }

  async function swapPage() {
    // Re-render from the server: the page shows exactly what the store holds.
    const response = await fetch(location.href, { credentials: "same-origin" });
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = doc.getElementById("page");
    if (fresh) document.getElementById("page").replaceWith(fresh);
    bind();
  }

  async function act(action, body) {
    const item = document.getElementById("item");
    if (!item) return;
    const id = item.dataset.item;
    const response = await fetch("/action/" + action + "/" + encodeURI(id), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = { error: response.statusText }; }
    if (!response.ok) {
      showMessage(data.error || "the action failed", true);
      return false;
    }
    await swapPage();
    showMessage(action + " saved for " + id, false);
    return true;
  }

  function formatTimes() {
    document.querySelectorAll("time[data-ts]").forEach(function (el) {
      const ts = parseFloat(el.dataset.ts);
      if (!isNaN(ts)) el.textContent = new Date(ts * 1000).toLocaleString();
    });
  }

  function bind() {
    formatTimes();
    const accept = document.getElementById("accept");
    if (accept) accept.onclick = function () { act("accept"); };
    const rejectForm = document.getElementById("reject-form");
    const editForm = document.getElementById("edit-form");
    const rejectOpen = document.getElementById("reject-open");
    if (rejectOpen) rejectOpen.onclick = openReject;
    const editOpen = document.getElementById("edit-open");
    if (editOpen) editOpen.onclick = openEdit;
    const editCancel = document.getElementById("edit-cancel");
    if (editCancel) editCancel.onclick = function () { editForm.hidden = true; };
    if (rejectForm) rejectForm.onsubmit = function (ev) {
      ev.preventDefault();
      act("reject", { reason: rejectForm.elements.reason.value });
    };
    if (editForm) editForm.onsubmit = function (ev) {
      ev.preventDefault();
      const f = editForm.elements;
      act("edit", {
        question: f.question.value,
        options: LETTERS.map(function (l) { return f["option-" + l].value; }),
        answer: f.answer.value,
        solution: f.solution.value,
      });
    };
    const commentForm = document.getElementById("comment-form");
    if (commentForm) commentForm.onsubmit = function (ev) {
      ev.preventDefault();
      act("comment", { text: commentForm.elements.text.value });
    };
    document.querySelectorAll("tr[data-href]").forEach(function (row) {
      row.ondblclick = function () { location.href = row.dataset.href; };
    });
  }

  function openReject() {
    const form = document.getElementById("reject-form");
    if (!form) return;
    form.hidden = false;
    form.elements.reason.focus();
  }

  function openEdit() {
    const form = document.getElementById("edit-form");
    if (!form) return;
    form.hidden = false;
    form.elements.question.focus();
  }

  let cursor = -1;  // the highlighted row on the list page
  function moveCursor(step) {
    const rows = Array.from(document.querySelectorAll("tr[data-href]"));
    if (!rows.length) return;
    cursor = Math.max(0, Math.min(rows.length - 1, cursor + step));
    rows.forEach(function (r, i) { r.classList.toggle("cursor", i === cursor); });
    rows[cursor].scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (ev) {
    const target = ev.target;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA"
                   || target.tagName === "SELECT")) {
      if (ev.key === "Escape") target.blur();
      return;
    }
    const onItem = !!document.getElementById("accept");
    const go = function (id) {
      const link = document.getElementById(id);
      if (link) location.href = link.href;
    };
    if (ev.key === "j") { if (onItem) go("next"); else moveCursor(1); }
    else if (ev.key === "k") { if (onItem) go("prev"); else moveCursor(-1); }
    else if (ev.key === "Enter" && !onItem) {
      const rows = document.querySelectorAll("tr[data-href]");
      if (rows[cursor]) location.href = rows[cursor].dataset.href;
      else return;
    }
    else if (ev.key === "a" && onItem) act("accept");
    else if (ev.key === "r" && onItem) openReject();
    else if (ev.key === "e" && onItem) openEdit();
    else return;
    ev.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", bind);
})();
