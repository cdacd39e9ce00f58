// Switchyard console: the only script. Pages work without it; it adds live updates,
// the rollout slider's sentence, reading a chosen plan file, and submitting the
// environment switcher on change.
"use strict";
(function () {
  // Live: fetch this page again and swap in its parts marked data-live (forms keep
  // what is being typed) — on each change of the environment's stream, or every
  // data-poll milliseconds (release pages, whose source has no stream here).
  const heading = document.getElementById("flag-heading");
  const shownVersion = heading ? heading.dataset.version : null;
  let busy = false, again = false;
  const refresh = async () => {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (response.ok) {
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        for (const part of document.querySelectorAll("[data-live][id]")) {
          const fresh = page.getElementById(part.id);
          if (fresh) part.replaceWith(fresh);
        }
        const freshHeading = page.getElementById("flag-heading");
        const stale = document.getElementById("stale");
        if (freshHeading && stale && freshHeading.dataset.version !== shownVersion) {
          stale.hidden = false;
        }
        if (!page.body.dataset.poll && timer) { clearInterval(timer); timer = null; }
        document.body.dataset.liveRevision = String(Number(document.body.dataset.liveRevision || 0) + 1);
      }
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  };
  const env = document.body.dataset.liveEnv;
  if (env && window.EventSource) {
    const source = new EventSource("/console/events?env=" + encodeURIComponent(env));
    source.addEventListener("open", () => { document.body.dataset.live = "connected"; });
    source.addEventListener("change", refresh);
  }
  const every = Number(document.body.dataset.poll);
  let timer = every > 0 ? setInterval(refresh, every) : null;

  // A plan file chosen is read into the plan's text area (pasting works without this).
  const planFile = document.getElementById("plan-file");
  const planText = document.getElementById("plan-text");
  if (planFile && planText) {
    planFile.addEventListener("change", async () => {
      const file = planFile.files && planFile.files[0];
      if (file) planText.value = await file.text();
    });
  }

  // The rollout slider says what it means as it moves.
  const slider = document.getElementById("rollout-percent");
  const meaning = document.getElementById("rollout-meaning");
  const variant = document.getElementById("rollout-variant");
  if (slider && meaning && variant) {
    const say = () => {
      meaning.replaceChildren(
        slider.value + " % of users get ", code(variant.value), ", the rest ", code(slider.dataset.off));
    };
    const code = (text) => { const c = document.createElement("code"); c.textContent = text; return c; };
    slider.addEventListener("input", say);
    variant.addEventListener("change", say);
  }

  // The environment switcher goes as soon as one is chosen.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
})();
