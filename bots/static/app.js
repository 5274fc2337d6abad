// The playground: sends a file or a recording to this server's OpenAI-compatible API and shows the result.
// Plain JavaScript on purpose: no build step, nothing fetched from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "chatscribe.apiKey";
let current = null; // {name, body}: the last transcript (verbose_json) and the file it came from
let recorder = null;

// -- input -----------------------------------------------------------------------------------------

$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  $("file").value = ""; // so that choosing the same file again starts again
  if (file) transcribe(file, file.name);
});

const drop = $("drop");
["dragenter", "dragover"].forEach((type) =>
  drop.addEventListener(type, (event) => { event.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach((type) =>
  drop.addEventListener(type, () => drop.classList.remove("over")));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  const file = event.dataTransfer.files[0];
  if (file) transcribe(file, file.name);
});
drop.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") { event.preventDefault(); $("file").click(); }
});

$("api-key").value = localStorage.getItem(KEY_STORAGE) || "";
$("api-key").addEventListener("change", () => localStorage.setItem(KEY_STORAGE, $("api-key").value.trim()));

$("record").addEventListener("click", async () => {
  if (recorder && recorder.state === "recording") { recorder.stop(); return; }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    return showError("This browser cannot record audio here (recording needs HTTPS or localhost).");
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    return showError("The microphone is not available: " + err.message);
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  const started = Date.now();
  const timer = setInterval(() => { $("record-time").textContent = clock((Date.now() - started) / 1000); }, 250);
  recorder.addEventListener("dataavailable", (event) => chunks.push(event.data));
  recorder.addEventListener("stop", () => {
    clearInterval(timer);
    stream.getTracks().forEach((track) => track.stop());
    $("record").textContent = "● Record";
    $("record").classList.remove("recording");
    const type = recorder.mimeType || "audio/webm";
    const extension = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
    transcribe(new Blob(chunks, { type }), "recording." + extension);
  });
  recorder.start();
  $("record").textContent = "■ Stop";
  $("record").classList.add("recording");
});

// -- talking to the API ----------------------------------------------------------------------------

const PROGRESS = ": chatscribe.progress ";

function transcribe(blob, name) {
  hideError();
  $("result").hidden = true;
  const form = new FormData();
  form.append("file", blob, name);
  form.append("model", "whisper-1");
  form.append("response_format", "verbose_json");
  form.append("stream", "true");
  const language = $("language").value.trim();
  if (language && $("task").value === "transcribe") form.append("language", language);
  if ($("prompt").value.trim()) form.append("prompt", $("prompt").value.trim());
  if ($("speakers").value !== "off") form.append("speakers", $("speakers").value);

  // XMLHttpRequest rather than fetch: it reports upload progress, and its responseText grows as events arrive.
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/audio/" + ($("task").value === "translate" ? "translations" : "transcriptions"));
  const key = $("api-key").value.trim();
  if (key) xhr.setRequestHeader("Authorization", "Bearer " + key);
  let seen = 0;
  let finished = false;
  const readEvents = () => {
    const text = xhr.responseText;
    const end = text.lastIndexOf("\n\n");
    if (end < seen) return;
    for (const chunk of text.slice(seen, end).split("\n\n")) {
      const line = chunk.trim();
      if (line.startsWith("data:")) finished = onEvent(JSON.parse(line.slice(5)), blob, name) || finished;
      // Progress comes as SSE comments, which OpenAI's clients skip.
      else if (line.startsWith(PROGRESS)) onEvent(JSON.parse(line.slice(PROGRESS.length)), blob, name);
    }
    seen = end + 2;
  };
  xhr.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) setStatus("Uploading… " + percent(event.loaded / event.total), event.loaded / event.total);
  });
  xhr.upload.addEventListener("load", () => setStatus("Waiting for the transcriber…", null));
  xhr.addEventListener("progress", () => { if (xhr.status === 200) readEvents(); });
  xhr.addEventListener("load", () => {
    if (xhr.status !== 200) return fail(apiMessage(xhr));
    readEvents();
    if (!finished) fail("The server stopped answering before the transcript was ready.");
  });
  xhr.addEventListener("error", () => fail("The server could not be reached."));
  setStatus("Uploading…", 0);
  xhr.send(form);
}

function onEvent(event, blob, name) {
  if (event.type === "chatscribe.progress") {
    if (event.stage === "queued") {
      setStatus(`In the queue (position ${event.position})` + eta(event.eta_s), null);
    } else {
      setStatus("Transcribing… " + percent(event.fraction) + eta(event.eta_s), event.fraction);
    }
    return false;
  }
  if (event.type === "error") { fail(event.error.message); return true; }
  if (event.type === "transcript.text.done") { show(event, blob, name); return true; }
  return false;
}

function apiMessage(xhr) {
  try {
    const message = JSON.parse(xhr.responseText).error.message;
    if (xhr.status === 401) { $("options").open = true; $("api-key").focus(); }
    return message;
  } catch (err) {
    return `The server answered ${xhr.status} ${xhr.statusText}.`;
  }
}

// -- showing the result ----------------------------------------------------------------------------

function show(body, blob, name) {
  $("status").hidden = true;
  current = { name: name.replace(/\.[^.]*$/, "") || "transcript", body };
  const list = $("segments");
  list.replaceChildren();
  const spoken = body.segments.filter((s) => s.text.trim());
  let previous = null;
  for (const segment of spoken) {
    const item = document.createElement("li");
    const stamp = document.createElement("button");
    stamp.type = "button";
    stamp.className = "stamp";
    stamp.textContent = clock(segment.start);
    stamp.addEventListener("click", () => { $("player").currentTime = segment.start; $("player").play(); });
    const words = document.createElement("span");
    words.textContent = segment.text.trim();
    item.append(stamp, " ");
    if (segment.speaker && segment.speaker !== previous) {  // a turn starts with who speaks
      const who = document.createElement("strong");
      who.textContent = speakerName(segment.speaker) + ": ";
      item.append(who);
    }
    previous = segment.speaker || previous;
    item.append(words);
    list.append(item);
  }
  for (const note of [body.notice || (spoken.length ? null : "No speech detected."), body.speaker_note]) {
    // Speech that could not be transcribed is said, with its time, never left out silently; so is a
    // speaker step that could not tell the voices apart.
    if (!note) continue;
    const item = document.createElement("li");
    item.className = "muted";
    item.textContent = note;
    list.append(item);
  }
  const language = body.language ? body.language[0].toUpperCase() + body.language.slice(1) : "unknown";
  $("meta").textContent = `${language} · ${clock(body.duration)}` + (body.truncated ? " · the file ended early" : "");
  if ($("player").src) URL.revokeObjectURL($("player").src);
  $("player").src = URL.createObjectURL(blob);
  $("result").hidden = false;
}

document.querySelectorAll("[data-format]").forEach((button) =>
  button.addEventListener("click", () => download(button.dataset.format)));

$("copy").addEventListener("click", () => {
  if (current) navigator.clipboard.writeText(toTxt(current.body));
});

function download(format) {
  if (!current) return;
  const text = format === "srt" ? toSrt(current.body) : format === "vtt" ? toVtt(current.body) : toTxt(current.body);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
  link.download = `${current.name}.${format}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

// Same shapes as the server's own renderers (core/transcript.py), so a download equals response_format=srt/vtt.
function toTxt(body) {
  const spoken = spokenSegments(body);
  if (!spoken.some((s) => s.speaker)) return body.text;
  const turns = [];  // one paragraph a turn, starting with who speaks
  for (const s of spoken) {
    const last = turns[turns.length - 1];
    if (last && (!s.speaker || s.speaker === last.speaker)) last.texts.push(s.text.trim());
    else turns.push({ speaker: s.speaker, texts: [s.text.trim()] });
  }
  return turns.map((t) => `${speakerName(t.speaker)}: ${t.texts.join(" ")}`).join("\n\n");
}

function toSrt(body) {
  return spokenSegments(body)
    .map((s, i) => {
      const said = s.speaker ? `[${speakerName(s.speaker)}] ${s.text.trim()}` : s.text.trim();
      return `${i + 1}\n${stamp(s.start, ",")} --> ${stamp(s.end, ",")}\n${said}\n`;
    })
    .join("\n");
}

function toVtt(body) {
  const blocks = spokenSegments(body).map((s) => {
    const text = vttEscape(s.text.trim());
    const said = s.speaker ? `<v ${vttEscape(speakerName(s.speaker))}>${text}` : text;
    return `${stamp(s.start, ".")} --> ${stamp(s.end, ".")}\n${said}\n`;
  });
  return ["WEBVTT\n", ...blocks].join("\n");
}

function spokenSegments(body) {
  // Segments carry `speaker` only where several speakers were told apart (core/transcript.py `labelled`).
  return body.segments.filter((s) => s.text.trim());
}

// "Speaker A" for a voice (A, B, …); a channel's or a known speaker's name as it is.
function speakerName(label) { return /^[A-Z]$/.test(label) ? `Speaker ${label}` : label; }
function vttEscape(text) { return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }

// -- small helpers -----------------------------------------------------------------------------------

function stamp(seconds, mark) {
  let ms = Math.max(0, Math.round(seconds * 1000));
  const h = Math.floor(ms / 3600000); ms -= h * 3600000;
  const m = Math.floor(ms / 60000); ms -= m * 60000;
  const s = Math.floor(ms / 1000); ms -= s * 1000;
  return `${pad(h)}:${pad(m)}:${pad(s)}${mark}${String(ms).padStart(3, "0")}`;
}

function clock(seconds) {
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
  return h ? `${h}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`;
}

function pad(n) { return String(n).padStart(2, "0"); }
function percent(fraction) { return Math.round(fraction * 100) + " %"; }
function eta(seconds) { return seconds == null ? "" : ` · about ${Math.max(1, Math.round(seconds))} s left`; }

function setStatus(text, fraction) {
  $("status").hidden = false;
  $("status-text").textContent = text;
  // An indeterminate bar while the server gives no fraction (waiting, queued).
  if (fraction == null) $("progress").removeAttribute("value"); else $("progress").value = fraction;
}

function fail(message) { $("status").hidden = true; showError(message); }
function showError(message) { $("error").textContent = message; $("error").hidden = false; }
function hideError() { $("error").hidden = true; }
