/* Live preview of a segment rule in the admin: POST the edited JSON to the preview API with the
   admin session (CSRF token from the form) and show the count and a sample, or the errors. */
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }
  ready(function () {
    var box = document.getElementById("segment-preview-box");
    var editor = document.getElementById("id_rules");
    if (!box || !editor) return;
    var url = box.getAttribute("data-preview-url");
    var status = document.getElementById("segment-preview-status");
    var errors = document.getElementById("segment-preview-errors");
    var table = document.getElementById("segment-preview-sample");
    var token = document.querySelector("input[name=csrfmiddlewaretoken]");
    var timer = null;
    var sequence = 0;

    function cell(row, text) { var td = document.createElement("td"); td.textContent = text || ""; row.appendChild(td); }
    function showErrors(list) {
      errors.textContent = "";
      (list || []).forEach(function (message) { var li = document.createElement("li"); li.textContent = message; errors.appendChild(li); });
    }
    function run() {
      var rules;
      try { rules = JSON.parse(editor.value || "{}"); } catch (e) {
        status.textContent = "Not valid JSON yet: " + e.message; table.style.display = "none"; showErrors([]); return;
      }
      var mine = ++sequence;
      status.textContent = "Counting…";
      fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token ? token.value : "" },
        body: JSON.stringify({ rules: rules, sample_size: 10 })
      }).then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      }).then(function (result) {
        if (mine !== sequence) return;
        if (!result.ok) {
          status.textContent = "The rule has problems:";
          table.style.display = "none";
          showErrors(result.body.rules || [result.body.detail || JSON.stringify(result.body)]);
          return;
        }
        showErrors([]);
        status.textContent = result.body.count.toLocaleString() + " customers match (" + result.body.seconds + " s).";
        var tbody = table.querySelector("tbody");
        tbody.textContent = "";
        result.body.sample.forEach(function (c) {
          var row = document.createElement("tr");
          cell(row, c.external_id); cell(row, (c.first_name + " " + c.last_name).trim()); cell(row, c.email); cell(row, c.country);
          tbody.appendChild(row);
        });
        table.style.display = result.body.sample.length ? "" : "none";
      }).catch(function (e) { if (mine === sequence) status.textContent = "Preview failed: " + e; });
    }
    editor.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(run, 600); });
    var kind = document.getElementById("id_kind");
    if (!kind || kind.value === "dynamic") run();
  });
})();
