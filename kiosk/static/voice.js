// Voice prompts: the page reads its main instruction aloud when it loads and when "Repeat" is tapped.
// The service says what (GET /api/voice?prompt=<page or page/step>, a WAV in the page's language);
// door and result pages follow the live screen there. "Mute" stops automatic prompts on this kiosk:
// kept in localStorage and in the pk_voice cookie (so the page is rendered with the switch in its
// state). A muted kiosk never speaks by itself; tapping "Repeat" is a request and is always answered.
"use strict";
(function () {
  const page = document.body.dataset.page;
  if (!page) return;
  const KEY = "pk_voice";
  const muteButton = document.getElementById("voice-mute");
  const repeatButton = document.getElementById("voice-repeat");
  const audio = new Audio();
  audio.preload = "auto";

  function stored() {
    try {
      const value = window.localStorage.getItem(KEY);
      if (value) return value;
    } catch (e) { /* storage disabled: the cookie still holds the choice */ }
    const match = document.cookie.split("; ").find((c) => c.startsWith(KEY + "="));
    return match ? match.slice(KEY.length + 1) : "on";
  }
  function isMuted() { return stored() === "off"; }
  function setMuted(muted) {
    const value = muted ? "off" : "on";
    try { window.localStorage.setItem(KEY, value); } catch (e) { /* the cookie is enough */ }
    document.cookie = KEY + "=" + value + "; path=/; max-age=31536000; samesite=strict";
    showMuted();
    if (muted) stop();
  }
  function showMuted() {
    if (muteButton) {
      muteButton.setAttribute("aria-pressed", isMuted() ? "true" : "false");
      muteButton.classList.toggle("on", isMuted());
    }
  }

  // What this page says: its name, and the step where the page has several.
  function promptKey() {
    if (page === "post") {
      const root = document.getElementById("posting");
      return "post/" + ((root && root.dataset.step) || "notice");
    }
    if (page === "deposit") {
      const step = document.querySelector(".step:not([hidden])");
      return "deposit/" + ((step && step.dataset.step) || "1");
    }
    if (page === "problem") {
      const root = document.querySelector("[data-problem]");
      return "problem/" + ((root && root.dataset.problem) || "network_down");
    }
    return page;
  }

  function stop() {
    audio.pause();
    audio.removeAttribute("src");
  }
  function play(key) {
    stop();
    audio.src = "/api/voice?prompt=" + encodeURIComponent(key);
    const started = audio.play();
    // Chromium refuses sound before the first tap unless started with
    // --autoplay-policy=no-user-gesture-required; then the Repeat button says "tap me".
    if (started) started.catch(() => { if (repeatButton) repeatButton.classList.add("pulse"); });
  }
  function autoplay(key) { if (!isMuted()) play(key || promptKey()); }

  if (muteButton) muteButton.addEventListener("click", () => setMuted(!isMuted()));
  if (repeatButton) repeatButton.addEventListener("click", () => {
    repeatButton.classList.remove("pulse");
    play(promptKey());
  });
  // The deposit steps change without a reload: speak each step as it appears.
  if (page === "deposit") {
    let shown = promptKey();
    const observer = new MutationObserver(() => {
      const now = promptKey();
      if (now !== shown) { shown = now; autoplay(now); }
    });
    document.querySelectorAll(".step").forEach((el) => observer.observe(el, { attributes: true, attributeFilter: ["hidden"] }));
  }
  document.addEventListener("kiosk-still-there", () => autoplay("still-there"));
  // API errors -> the problem table's spoken "what happened, what now" (kiosk/problems.py)
  const PROBLEM_OF = { wrong_code: "wrong_code", keypad_paused: "wrong_code", door_unavailable: "door_jammed",
                       no_compartment: "no_compartment" };
  document.addEventListener("kiosk-problem", (event) => {
    const { error, reason } = event.detail;
    const key = error === "posting_unavailable" ? (reason === "camera_down" ? "camera_down" : null) : PROBLEM_OF[error];
    if (key) autoplay("problem/" + key);
  });
  window.addEventListener("pagehide", stop);
  showMuted();
  autoplay();
})();
