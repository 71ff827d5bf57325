// Parley talk page: microphone → PCM16 over Parley's browser protocol
// (docs/protocol.md §1) → the agent's reply played back. No framework, no build.
//
// Query parameters (for tests and for trying the fallback on any browser):
//   ?context_rate=48000   run the AudioContext at this rate instead of 24 kHz,
//                         as if the browser had refused 24 kHz
//   ?wire_rate=24000      rate to announce in `start` (default: the context's
//                         rate when the protocol accepts it, else 24000 with
//                         resampling in the worklets)
//   ?transport=webrtc     call over WebRTC (webrtc.js) instead of the WebSocket
//                         (also the "WebRTC" box); &ice=loopback offers only
//                         127.0.0.1 candidates (a test on one machine)

import { connectWebRTC, PlayoutMeter } from "./webrtc.js";

const PREFERRED_RATE = 24000;
const WIRE_RATES = [8000, 16000, 24000, 44100, 48000]; // protocol.md §1.1
const FRAME_MS = 20;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// Everything a test (or a curious person in the console) may want to read.
const stats = {
  state: "idle",
  contextRate: null,
  wireRate: null,
  sentMs: 0,
  playedMs: 0,
  responses: 0,
  interruptions: 0,
  droppedFrames: 0, // reply audio that arrived outside a response
  transcript: [], // {role, text, final, id}
  latencies: [], // the server's `metrics` messages
  errors: [],
  transport: "websocket",
};
window.parleyStats = stats;

let call = null; // the live call, see start()

// ---- audio -----------------------------------------------------------------

// An AudioContext with the microphone connected to it. Tries 24 kHz first;
// Firefox refuses to connect a 48 kHz microphone to a 24 kHz context (bugzilla
// 1674892), so on failure it falls back to the device's own rate.
async function openAudio(stream) {
  const forced = Number(params.get("context_rate")) || null;
  const attempts = forced ? [forced] : [PREFERRED_RATE, null];
  let lastError = null;
  for (const rate of attempts) {
    const options = { latencyHint: "interactive" };
    if (rate) options.sampleRate = rate;
    let ctx = null;
    try {
      ctx = new AudioContext(options);
      const source = ctx.createMediaStreamSource(stream);
      await ctx.audioWorklet.addModule("capture-worklet.js");
      await ctx.audioWorklet.addModule("playback-worklet.js");
      return { ctx, source };
    } catch (err) {
      lastError = err;
      if (ctx) await ctx.close();
    }
  }
  throw lastError;
}

function pickWireRate(contextRate) {
  const asked = Number(params.get("wire_rate"));
  if (WIRE_RATES.includes(asked)) return asked;
  return WIRE_RATES.includes(contextRate) ? contextRate : PREFERRED_RATE;
}

// ---- the call --------------------------------------------------------------

async function start() {
  if ($("webrtc").checked) return startWebRTC();
  setError("");
  $("start").disabled = true;
  let mic = null;
  let ctx = null;
  try {
    mic = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const opened = await openAudio(mic);
    ctx = opened.ctx;
    const source = opened.source;
    await ctx.resume(); // a context made after awaits may start suspended (autoplay policy)
    const wireRate = pickWireRate(ctx.sampleRate);
    stats.contextRate = ctx.sampleRate;
    stats.wireRate = wireRate;

    const capture = new AudioWorkletNode(ctx, "parley-capture", {
      numberOfOutputs: 1, // silent, but connected so the graph pulls it
      processorOptions: { targetRate: wireRate, frameMs: FRAME_MS },
    });
    const playback = new AudioWorkletNode(ctx, "parley-playback", {
      numberOfInputs: 0,
      outputChannelCount: [1],
    });
    playback.port.postMessage({ type: "config", wireRate });
    source.connect(capture).connect(ctx.destination);
    playback.connect(ctx.destination);

    const res = await fetch("conversations", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    if (!res.ok) throw new Error(`POST /conversations: HTTP ${res.status}`);
    const conv = await res.json();
    const ws = new WebSocket(socketUrl(conv));
    ws.binaryType = "arraybuffer";

    call = { ws, ctx, mic, capture, playback, wireRate, ready: false, response: null, received: new Map() };
    capture.port.onmessage = (e) => sendAudio(e.data);
    playback.port.onmessage = (e) => onPlayback(e.data);
    ws.onopen = () => ws.send(JSON.stringify({
      type: "start",
      session_id: null, // the conversation is the one in the URL
      user_id: null,
      format: { encoding: "pcm16", sample_rate: wireRate, channels: 1 },
      metadata: { page: location.pathname },
      version: 1,
    }));
    ws.onmessage = (e) => (typeof e.data === "string" ? onControl(JSON.parse(e.data)) : onAudio(e.data));
    ws.onclose = (e) => {
      if (e.code !== 1000 && e.code !== 1005) setError(`Connection closed (${e.code}${e.reason ? `: ${e.reason}` : ""})`);
      hangUp();
    };
    $("stop").disabled = false;
    setState("connecting");
    showStats();
  } catch (err) {
    setError(`Could not start: ${err.message || err}`);
    if (!call) {
      // Failed before the call existed: release the microphone and audio here.
      if (mic) mic.getTracks().forEach((track) => track.stop());
      if (ctx) ctx.close();
    }
    hangUp();
  }
}

// The same call over WebRTC: no worklets (the browser captures, encodes, buffers
// and plays), the control messages on the data channel, playback measured from the
// RTP statistics (the server reports playback itself: its track knows what it sent).
async function startWebRTC() {
  setError("");
  $("start").disabled = true;
  let mic = null;
  try {
    mic = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const res = await fetch("conversations", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    if (!res.ok) throw new Error(`POST /conversations: HTTP ${res.status}`);
    const conv = await res.json();
    const { socket, pc } = await connectWebRTC(mic, conv.id, $("reply"), {
      loopbackOnly: params.get("ice") === "loopback",
    });
    window.parleyCall = { pc }; // for a test to read the RTP statistics
    const meter = new PlayoutMeter(pc);
    const poll = setInterval(async () => {
      stats.playedMs = await meter.poll();
      stats.sentMs = meter.sentMs;
    }, 200);
    stats.contextRate = 48000;
    stats.wireRate = 48000;
    stats.transport = "webrtc";
    call = {
      ws: socket, ctx: null, mic, capture: null, playback: null, wireRate: 48000,
      ready: false, response: null, received: new Map(), webrtc: { pc, poll },
    };
    socket.onopen = () => socket.send(JSON.stringify({
      type: "start",
      session_id: null,
      user_id: null,
      format: { encoding: "pcm16", sample_rate: 48000, channels: 1 },
      metadata: { page: location.pathname, transport: "webrtc" },
      version: 1,
    }));
    socket.onmessage = (e) => onControl(JSON.parse(e.data));
    socket.onclose = () => hangUp();
    $("stop").disabled = false;
    setState("connecting");
    showStats();
  } catch (err) {
    setError(`Could not start: ${err.message || err}`);
    if (!call && mic) mic.getTracks().forEach((track) => track.stop());
    hangUp();
  }
}

function socketUrl(conv) {
  const url = new URL(conv.websocket_url || `ws/audio/${conv.id}`, location.href);
  if (url.protocol === "http:") url.protocol = "ws:";
  if (url.protocol === "https:") url.protocol = "wss:";
  return url.href;
}

function stop() {
  if (call && call.ws.readyState === WebSocket.OPEN) call.ws.send(JSON.stringify({ type: "stop" }));
  hangUp();
}

function hangUp() {
  if (call) {
    const { ws, ctx, mic, capture, webrtc } = call;
    call = null;
    if (capture) capture.port.postMessage("stop");
    mic.getTracks().forEach((track) => track.stop());
    if (ws.readyState <= WebSocket.OPEN) ws.close(1000);
    if (ctx) ctx.close();
    if (webrtc) clearInterval(webrtc.poll);
    setState("ended");
  }
  $("start").disabled = false;
  $("stop").disabled = true;
}

function send(msg) {
  if (call && call.ws.readyState === WebSocket.OPEN) call.ws.send(JSON.stringify(msg));
}

// Playback reports come from the page's worklet; over WebRTC the server's track
// reports what it sent, and the page sends none.
function report(msg) {
  if (call && !call.webrtc) send(msg);
}

// One capture frame (PCM16 LE, FRAME_MS long) → one binary WebSocket frame.
// Int16Array is platform-endian; every platform browsers run on is little-endian.
function sendAudio(buffer) {
  if (!call || !call.ready || call.ws.readyState !== WebSocket.OPEN) return;
  call.ws.send(buffer);
  stats.sentMs += (buffer.byteLength / 2 / call.wireRate) * 1000;
}

// Binary frame from the server: audio of the current response.
function onAudio(buffer) {
  if (!call) return;
  const id = call.response;
  if (id === null) {
    stats.droppedFrames += 1; // after an `interrupted`, before the next response
    return;
  }
  call.received.set(id, (call.received.get(id) || 0) + buffer.byteLength);
  call.playback.port.postMessage({ type: "audio", id, pcm: buffer }, [buffer]);
}

// Progress from the playback worklet → `playback` messages (protocol §1.3).
function onPlayback(msg) {
  stats.playedMs = msg.totalMs;
  if (msg.type === "progress") {
    report({ type: "playback", response_id: msg.id, played_ms: Math.round(msg.ms), done: msg.done });
  } else if (msg.type === "cleared") {
    for (const { id, ms } of msg.reports) report({ type: "playback", response_id: id, played_ms: Math.round(ms) });
  }
  showStats();
}

function onControl(msg) {
  if (!call) return; // a message that was in flight when the call ended
  switch (msg.type) {
    case "ready": {
      const rate = msg.format && msg.format.sample_rate;
      if (rate && rate !== call.wireRate && call.playback) {
        // The server's audio comes at the accepted rate; play it at that rate.
        call.playback.port.postMessage({ type: "config", wireRate: rate });
      }
      call.ready = true;
      setState("listening");
      break;
    }
    case "state":
      setState(msg.state);
      break;
    case "transcript":
      showTurn(msg.role, msg.item_id || `${msg.role}-${stats.transcript.length}`, msg.text, msg.final);
      break;
    case "response_started":
      call.response = msg.response_id;
      stats.responses += 1;
      showTurn("assistant", msg.response_id, "", false);
      break;
    case "response_text":
      appendTurn(msg.response_id, msg.delta);
      break;
    case "response_done":
      if (msg.text) showTurn("assistant", msg.response_id, msg.text, true);
      if (call.received.has(msg.response_id)) {
        call.playback.port.postMessage({ type: "end", id: msg.response_id });
      } else {
        report({ type: "playback", response_id: msg.response_id, played_ms: 0, done: true });
      }
      if (call.response === msg.response_id) call.response = null;
      break;
    case "interrupted":
    case "clear":
      // Stop now: the worklet drops its queue on its next render quantum and
      // answers with how much it played, which goes back as a last `playback`.
      if (call.playback) call.playback.port.postMessage({ type: "clear" });
      call.response = null;
      if (msg.type === "interrupted") {
        stats.interruptions += 1;
        showTurn("assistant", msg.response_id, msg.played_text ? `${msg.played_text} …` : "…", true, "cut");
      }
      break;
    case "metrics":
      showLatency(msg);
      break;
    case "error":
      setError(`${msg.code}: ${msg.message}${msg.fatal ? " (the call has ended)" : ""}`);
      break;
    case "pong":
      break;
    default:
      break; // a newer server's message: ignore it, as the protocol asks of both sides
  }
}

// ---- the view --------------------------------------------------------------

const turns = new Map(); // "role:id" → {li, entry}

function showTurn(role, id, text, final, extraClass = "") {
  const key = `${role}:${id}`;
  let turn = turns.get(key);
  if (!turn) {
    const li = document.createElement("li");
    li.className = role;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? "You" : "Agent";
    const said = document.createElement("span");
    said.className = "said";
    li.append(who, " ", said);
    $("transcript").append(li);
    turn = { li, said, entry: { role, id, text: "", final: false } };
    turns.set(key, turn);
    stats.transcript.push(turn.entry);
  }
  turn.entry.text = text;
  turn.entry.final = final;
  turn.said.textContent = text;
  turn.li.classList.toggle("partial", !final);
  if (extraClass) turn.li.classList.add(extraClass);
  turn.li.scrollIntoView({ block: "nearest" });
}

function appendTurn(responseId, delta) {
  const turn = turns.get(`assistant:${responseId}`);
  showTurn("assistant", responseId, (turn ? turn.entry.text : "") + delta, false);
}

function showLatency(m) {
  stats.latencies.push(m);
  const li = document.createElement("li");
  const fmt = (v) => (typeof v === "number" ? `${Math.round(v)} ms` : "—");
  const parts = [
    ["end of turn", m.end_of_turn_ms],
    ["STT", m.stt_ms],
    ["LLM first token", m.llm_first_token_ms],
    ["TTS first byte", m.tts_first_byte_ms],
  ].filter(([, v]) => typeof v === "number");
  const strong = document.createElement("strong");
  strong.textContent = fmt(m.voice_to_voice_ms);
  li.append(`Turn ${m.turn_index}: `, strong);
  if (parts.length) li.append(` (${parts.map(([name, v]) => `${name} ${fmt(v)}`).join(", ")})`);
  $("latency").append(li);
}

function setState(state) {
  stats.state = state;
  $("state").value = state.replace("_", " ");
  document.body.dataset.state = state;
}

function setError(text) {
  if (text) stats.errors.push(text);
  $("error").textContent = text;
  $("error").hidden = !text;
}

function showStats() {
  const el = $("stats");
  el.dataset.sentMs = Math.round(stats.sentMs);
  el.dataset.playedMs = Math.round(stats.playedMs);
  el.dataset.sampleRate = stats.contextRate || "";
  el.dataset.wireRate = stats.wireRate || "";
  $("sent").value = (stats.sentMs / 1000).toFixed(1);
  $("played").value = (stats.playedMs / 1000).toFixed(1);
  $("rates").value = stats.contextRate
    ? `audio ${stats.contextRate / 1000} kHz, wire ${stats.wireRate / 1000} kHz`
    : "—";
}

setInterval(showStats, 500);
$("webrtc").checked = params.get("transport") === "webrtc";
$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
