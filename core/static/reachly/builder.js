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

  /* POST the parts to a preview endpoint; show template errors in `errors`, else hand the answer on. */
  function requestPreview(url, body, form, state, errors, show) {
    state.textContent = "rendering…";
    fetch(url, {
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
        show(data);
      })
      .catch(function () { state.textContent = "preview unavailable"; });
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
      requestPreview(form.dataset.livePreview, body, form, state, errors, function (data) {
        var r = data.rendered;
        ["subject", "preheader", "text", "push_title", "push_body", "push_url"].forEach(function (name) {
          var el = document.getElementById("preview-" + name);
          if (el) el.textContent = r[name] || "";
        });
        var frame = document.getElementById("preview-html");
        if (frame) frame.srcdoc = r.html || "";
        state.textContent = "up to date";
      });
    }, 400);
    form.querySelectorAll("textarea, input[type=text]").forEach(function (el) {
      el.addEventListener("input", render);
    });
  }

  /* The badge tone of each status, as the server draws it (campaigns/admin/campaign.py). */
  var TONES = { sent: "ok", sending: "", scheduled: "", paused: "warn", cancelled: "bad", draft: "warn" };

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
          if (status) {
            status.textContent = data.status_display || data.status;
            if (status.classList.contains("badge")) status.className = "badge big " + (TONES[data.status] || "");
          }
          if (data.offered) {
            document.querySelectorAll("a.transition[data-verb]").forEach(function (a) {
              a.hidden = data.offered.indexOf(a.dataset.verb) < 0;
            });
          }
          if (data.status === "sending" || data.status === "scheduled") setTimeout(poll, 2000);
        })
        .catch(function () { setTimeout(poll, 5000); });
    }
    poll();
  }


  /* Change form: show the variant parts of the chosen channel only. */
  function channelParts() {
    var select = document.getElementById("id_channel");
    var card = document.getElementById("builder-status");
    if (!select && !card) return;
    function apply() {
      var campaignChannel = select ? select.value : card.dataset.channel;
      document.querySelectorAll("fieldset.channel-email, fieldset.channel-push").forEach(function (fs) {
        // A variant may go out on its own channel (an experiment comparing channels).
        var own = fs.closest(".inline-related");
        var pick = own ? own.querySelector("select[name$='-channel']") : null;
        var channel = (pick && pick.value) || campaignChannel;
        fs.hidden = !fs.classList.contains("channel-" + channel);
      });
    }
    if (select) select.addEventListener("change", apply);
    document.addEventListener("change", function (event) {
      var target = event.target;
      if (target.name && /^variants-\d+-channel$/.test(target.name)) apply();
    });
    document.addEventListener("formset:added", apply);
    apply();
  }

  /* Change form: in the schedule step, show the fields of the chosen kind (and trigger kind). */
  var SCHEDULE_FIELDS = {
    now: [],
    at: ["send_at"],
    local_time: ["local_send_date", "local_send_time", "schedule_timezone"],
    recurring: ["cron", "next_run_at", "schedule_timezone"],
    triggered: ["trigger_kind", "trigger_delay_minutes"],
  };
  var TRIGGER_FIELDS = {
    event: ["trigger_event_type", "trigger_event_name"],
    segment_entry: ["trigger_segment"],
    points_expiring: ["trigger_points_days"],
  };
  function scheduleRows() {
    var kind = document.getElementById("id_schedule_kind");
    if (!kind) return;
    var trigger = document.getElementById("id_trigger_kind");
    function apply() {
      var wanted = (SCHEDULE_FIELDS[kind.value] || []).slice();
      if (kind.value === "triggered" && trigger) wanted = wanted.concat(TRIGGER_FIELDS[trigger.value] || []);
      document.querySelectorAll("fieldset.step-schedule .form-row").forEach(function (row) {
        if (row.classList.contains("field-schedule_kind")) return;
        row.hidden = !wanted.some(function (name) { return row.classList.contains("field-" + name); });
      });
    }
    kind.addEventListener("change", apply);
    if (trigger) trigger.addEventListener("change", apply);
    apply();
  }

  /* Variants: each weight's share of the audience left after the control group. */
  function liveForms() {
    return Array.prototype.filter.call(
      document.querySelectorAll("#variants-group .inline-related"),
      function (el) { return el.id && !/-empty$/.test(el.id); }
    );
  }
  function weightShares() {
    var group = document.getElementById("variants-group");
    if (!group) return;
    var control = document.getElementById("id_control_percent");
    function apply() {
      var forms = liveForms();
      var weights = forms.map(function (form) {
        var input = form.querySelector("input[name$='-weight']");
        var removed = form.querySelector("input[name$='-DELETE']");
        if (!input || (removed && removed.checked)) return 0;
        return Math.max(0, parseInt(input.value, 10) || 0);
      });
      var total = weights.reduce(function (a, b) { return a + b; }, 0) || 1;
      var treated = 100 - (control ? parseFloat(control.value) || 0 : 0);
      forms.forEach(function (form, i) {
        var input = form.querySelector("input[name$='-weight']");
        if (!input) return;
        var out = form.querySelector(".variant-share");
        if (!out) {
          out = document.createElement("span");
          out.className = "variant-share";
          out.setAttribute("aria-live", "polite");
          input.insertAdjacentElement("afterend", out);
        }
        out.textContent = "= " + (Math.round(10 * treated * weights[i] / total) / 10) + " % of the audience";
      });
    }
    group.addEventListener("input", apply);
    group.addEventListener("change", apply);
    if (control) control.addEventListener("input", apply);
    document.addEventListener("formset:added", apply);
    document.addEventListener("formset:removed", apply);
    apply();
  }

  /* Content step: render the chosen variant's unsaved parts for a customer, as the marketer types. */
  function inlinePreview() {
    var box = document.querySelector("[data-inline-preview]");
    if (!box) return;
    var form = box.closest("form");
    var select = document.getElementById("builder-preview-variant");
    var customer = document.getElementById("builder-preview-customer");
    var state = document.getElementById("builder-preview-state");
    var errors = document.getElementById("builder-preview-errors");
    var channel = document.getElementById("id_channel");
    var card = document.getElementById("builder-status");
    var PARTS = ["subject", "preheader", "html", "text", "push_title", "push_body", "push_url"];
    function options() {
      var chosen = select.value;
      select.innerHTML = "";
      liveForms().forEach(function (el, i) {
        var name = el.querySelector("input[name$='-name']");
        var option = document.createElement("option");
        option.value = el.id.split("-").pop();
        option.textContent = (name && name.value) || "#" + (i + 1);
        select.appendChild(option);
      });
      if (chosen && select.querySelector("option[value='" + chosen + "']")) select.value = chosen;
    }
    var render = debounce(function () {
      var index = select.value;
      var body = new FormData();
      PARTS.forEach(function (part) {
        var el = document.getElementById("id_variants-" + index + "-" + part);
        if (el) body.set(part, el.value);
      });
      body.set("customer", customer.value.trim());
      ["name", "recommender"].forEach(function (part) {
        var el = document.getElementById("id_variants-" + index + "-" + part);
        if (el && el.value) body.set(part, el.value);
      });
      requestPreview(box.dataset.inlinePreview, body, form, state, errors, function (data) {
        var r = data.rendered;
        var own = document.getElementById("id_variants-" + index + "-channel");
        var push = ((own && own.value) || (channel ? channel.value : card.dataset.channel)) === "push";
        document.getElementById("builder-preview-subject").textContent = push ? "" : r.subject || "";
        document.getElementById("builder-preview-preheader").textContent = push ? "" : r.preheader || "";
        document.getElementById("builder-preview-push_title").textContent = r.push_title || "";
        document.getElementById("builder-preview-push_body").textContent = r.push_body || "";
        document.getElementById("builder-preview-push").hidden = !push;
        var frame = document.getElementById("builder-preview-html");
        frame.hidden = push;
        frame.srcdoc = r.html || "";
        state.textContent = "for " + (data.customer || "a sample customer") + " · up to date";
        box.dataset.rendered = select.value;
      });
    }, 400);
    var group = document.getElementById("variants-group");
    if (group) {
      group.addEventListener("input", function (event) {
        if (/-name$/.test(event.target.name || "")) options();
        var edited = event.target.closest(".inline-related");
        if (!edited || !event.target.dataset.part) return;
        // The preview follows the variant being edited.
        var index = edited.id.split("-").pop();
        if (select.value !== index) { options(); select.value = index; }
        render();
      });
    }
    document.addEventListener("formset:added", options);
    select.addEventListener("focus", options);
    select.addEventListener("change", render);
    customer.addEventListener("input", render);
    options();
    render();
  }

  document.addEventListener("DOMContentLoaded", function () {
    channelParts();
    scheduleRows();
    weightShares();
    inlinePreview();
    audienceCount();
    livePreview();
    progress();
  });
})();
