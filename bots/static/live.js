// Live mode: the microphone streams to /v1/realtime?intent=transcription (OpenAI's Realtime transcription
// protocol) as PCM16 at 24 kHz, and each utterance's words appear as soon as the server has them.
"use strict";

const LIVE_RATE = 24000;
const LIVE_CHUNK = LIVE_RATE / 10; // 100 ms per append, a multiple of 3 samples (the server's VAD likes that)
let live = null; // {socket, context, stream, node, pending, pendingLength, lines, stopping}

document.getElementById("live").addEventListener("click", () => (live ? stopLive() : startLive()));

async function startLive() {
  hideError();
  if (!navigator.mediaDevices || !window.AudioContext) {
    return showError("This browser cannot use the microphone here (it needs HTTPS or localhost).");
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false } });
  } catch (err) {
    return showError("The microphone is not available: " + err.message);
  }
  // The context runs at 24 kHz, so the browser resamples the microphone and the page only converts to PCM16.
  const context = new AudioContext({ sampleRate: LIVE_RATE });
  const source = context.createMediaStreamSource(stream);
  let node;
  if (context.audioWorklet) {
    await context.audioWorklet.addModule("/static/pcm-worklet.js");
    node = new AudioWorkletNode(context, "pcm-tap");
    node.port.onmessage = (event) => liveSamples(event.data);
  } else { // older browsers
    node = context.createScriptProcessor(4096, 1, 1);
    node.onaudioprocess = (event) => liveSamples(event.inputBuffer.getChannelData(0).slice(0));
  }
  source.connect(node);
  node.connect(context.destination); // a node must reach the destination to be pulled; it outputs silence

  live = { socket: openLiveSocket(), context, stream, node, pending: [], pendingLength: 0, lines: {}, stopping: false };
  document.getElementById("live-lines").replaceChildren();
  document.getElementById("live-panel").hidden = false;
  document.getElementById("live").textContent = "■ Stop live";
  document.getElementById("live").classList.add("recording");
  document.getElementById("record").disabled = true;
  setLiveState("Connecting…");
}

function openLiveSocket() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const key = document.getElementById("api-key").value.trim();
  // Browsers cannot send an Authorization header on a WebSocket: the key travels as OpenAI's subprotocol.
  const protocols = key ? ["realtime", "openai-insecure-api-key." + key] : ["realtime"];
  const socket = new WebSocket(`${scheme}//${location.host}/v1/realtime?intent=transcription`, protocols);
  socket.addEventListener("open", () => {
    const language = document.getElementById("language").value.trim();
    const prompt = document.getElementById("prompt").value.trim();
    socket.send(JSON.stringify({
      type: "session.update",
      session: {
        type: "transcription",
        audio: { input: {
          format: { type: "audio/pcm", rate: LIVE_RATE },
          transcription: { model: "whisper-1", language: language || null, prompt: prompt || null },
          turn_detection: { type: "server_vad", threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 800 },
        } },
      },
    }));
    setLiveState("Listening… speak, and pause for the words to appear.");
  });
  socket.addEventListener("message", (message) => onLiveEvent(JSON.parse(message.data)));
  socket.addEventListener("close", (event) => {
    if (live && !live.stopping) showError(event.reason || "The live connection closed (check the API key).");
    if (live) teardownLive();
  });
  return socket;
}

function liveSamples(samples) {
  if (!live || live.stopping) return;
  live.pending.push(samples);
  live.pendingLength += samples.length;
  while (live.pendingLength >= LIVE_CHUNK) sendLiveChunk(LIVE_CHUNK);
}

function sendLiveChunk(count) {
  const pcm = new Int16Array(count);
  let filled = 0;
  while (filled < count) {
    const head = live.pending[0];
    const take = Math.min(head.length, count - filled);
    for (let i = 0; i < take; i++) {
      const s = Math.max(-1, Math.min(1, head[i]));
      pcm[filled + i] = s < 0 ? s * 0x8000 : s * 0x7fff;
    }
    filled += take;
    if (take === head.length) live.pending.shift(); else live.pending[0] = head.subarray(take);
  }
  live.pendingLength -= count;
  if (live.socket.readyState === WebSocket.OPEN) {
    live.socket.send(JSON.stringify({ type: "input_audio_buffer.append", audio: base64(pcm.buffer) }));
  }
}

function onLiveEvent(event) {
  if (event.type === "input_audio_buffer.speech_started") {
    liveLine(event.item_id).classList.add("speaking");
    setLiveState("Hearing speech…");
  } else if (event.type === "input_audio_buffer.committed") {
    if (live && live.stopping) live.finalItem = event.item_id; // the commit sent by stopLive()
  } else if (event.type === "input_audio_buffer.speech_stopped") {
    setLiveState("Transcribing what was said…");
  } else if (event.type === "conversation.item.input_audio_transcription.delta") {
    const line = liveLine(event.item_id);
    line.dataset.text = (line.dataset.text || "") + event.delta;
    line.textContent = line.dataset.text;
  } else if (event.type === "conversation.item.input_audio_transcription.completed") {
    const line = liveLine(event.item_id);
    line.classList.remove("speaking");
    if (event.transcript.trim()) line.textContent = event.transcript.trim(); else line.remove();
    setLiveState(live && live.stopping ? "Stopped." : "Listening…");
    if (live && live.stopping && event.item_id === live.finalItem) live.socket.close();
  } else if (event.type === "conversation.item.input_audio_transcription.failed") {
    liveLine(event.item_id).remove();
    showError(event.error.message);
  } else if (event.type === "error") {
    if (event.error.code === "input_audio_buffer_commit_empty" && live && live.stopping) live.socket.close();
    else showError(event.error.message);
  }
}

function liveLine(itemId) {
  if (!live.lines[itemId]) {
    const item = document.createElement("li");
    item.textContent = "…";
    document.getElementById("live-lines").append(item);
    live.lines[itemId] = item;
  }
  return live.lines[itemId];
}

function stopLive() {
  live.stopping = true;
  live.stream.getTracks().forEach((track) => track.stop());
  live.context.close();
  // What was said since the last pause is committed by hand, and the socket closes when its words are in.
  if (live.socket.readyState === WebSocket.OPEN) {
    live.socket.send(JSON.stringify({ type: "input_audio_buffer.commit" }));
    setLiveState("Finishing…");
    setTimeout(() => live && live.socket.close(), 30000);
  } else {
    teardownLive();
  }
}

function teardownLive() {
  if (!live.stopping) {
    live.stream.getTracks().forEach((track) => track.stop());
    live.context.close();
  }
  live = null;
  document.getElementById("live").textContent = "◉ Live";
  document.getElementById("live").classList.remove("recording");
  document.getElementById("record").disabled = false;
  if (document.getElementById("live-state").textContent !== "Stopped.") setLiveState("");
}

function setLiveState(text) { document.getElementById("live-state").textContent = text; }

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}
