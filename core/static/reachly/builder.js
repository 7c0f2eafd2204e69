/* reachly campaign builder: live audience count, live template preview, progress polling.
   Small vanilla JS over the admin's JSON endpoints; every part degrades to the plain page. */
(function () {
  "use strict";

  function debounce(fn, ms) {
    var timer;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  function csrfToken(form) {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  /* Audience: count the customers of the ticked segments. */
  function audienceCount() {
    var badge = document.querySelector("[data-audience-count-url]");
    if (!badge) return;
    if (!document.querySelector("input[name=include_segments]")) { badge.hidden = true; return; }
    var channel = document.getElementById("id_channel");
    var update = debounce(function () {
      var params = new URLSearchParams();
      document.querySelectorAll("input[name=include_segments]:checked").forEach(function (el) {
        params.append("include", el.value);
      });
      document.querySelectorAll("input[name=exclude_segments]:checked").forEach(function (el) {
        params.append("exclude", el.value);
      });
      if (channel && channel.value) params.set("channel", channel.value);
      badge.textContent = "counting…";
      fetch(badge.dataset.audienceCountUrl + "?" + params.toString(), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          if (data.errors) { badge.textContent = data.errors[0].message; return; }
          var text = data.count.toLocaleString() + " customers";
          if (data.reachable !== undefined) text += " · " + data.reachable.toLocaleString() + " with " + data.channel + " consent";
          badge.textContent = text;
          badge.dataset.count = data.count;
        })
        .catch(function () { badge.textContent = "count unavailable"; });
    }, 250);
    document.querySelectorAll("input[name=include_segments], input[name=exclude_segments]").forEach(function (el) {
      el.addEventListener("change", update);
    });
    if (channel) channel.addEventListener("change", update);
    update();
  }

  /* Template editor: re-render the unsaved parts for the chosen customer as the marketer types. */
  function livePreview() {
    var form = document.querySelector("[data-live-preview]");
    if (!form) return;
    var state = document.getElementById("preview-state");
    var errors = document.getElementById("preview-errors");
    var render = debounce(function () {
      var body = new FormData(form);
      var customer = document.getElementById("preview-customer");
      if (customer) body.set("customer", customer.value);
      state.textContent = "rendering…";
      fetch(form.dataset.livePreview, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(form) },
      })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          errors.innerHTML = "";
          if (data.errors) {
            data.errors.forEach(function (e) {
              var li = document.createElement("li");
              li.textContent = (e.field || "template") + (e.line ? ", line " + e.line : "") + ": " + e.message;
              errors.appendChild(li);
            });
            state.textContent = "template error";
            return;
          }
          var r = data.rendered;
          ["subject", "preheader", "text", "push_title", "push_body", "push_url"].forEach(function (name) {
            var el = document.getElementById("preview-" + name);
            if (el) el.textContent = r[name] || "";
          });
          var frame = document.getElementById("preview-html");
          if (frame) frame.srcdoc = r.html || "";
          state.textContent = "up to date";
        })
        .catch(function () { state.textContent = "preview unavailable"; });
    }, 400);
    form.querySelectorAll("textarea, input[type=text]").forEach(function (el) {
      el.addEventListener("input", render);
    });
  }

  /* Progress: poll the ledger counts while the campaign is sending. */
  function progress() {
    var box = document.querySelector("[data-progress-url]");
    if (!box) return;
    var bar = box.querySelector(".progress-bar");
    var fill = bar.querySelector("span");
    var text = box.querySelector(".progress-text");
    var status = document.getElementById("campaign-status");
    function poll() {
      fetch(box.dataset.progressUrl, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          fill.style.width = data.percent + "%";
          bar.setAttribute("aria-valuenow", data.percent);
          text.textContent = data.percent + " % — " + data.done.toLocaleString() + " of " +
            data.total.toLocaleString() + " messages final (" + data.status + ")";
          box.dataset.status = data.status;
          if (status) status.textContent = data.status;
          if (data.status === "sending" || data.status === "scheduled") setTimeout(poll, 2000);
        })
        .catch(function () { setTimeout(poll, 5000); });
    }
    poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    audienceCount();
    livePreview();
    progress();
  });
})();
