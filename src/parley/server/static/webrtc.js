// WebRTC for the talk page: the microphone as an Opus track (the browser's echo
// cancellation, noise suppression and gain control on), the reply as a track the
// browser plays through its jitter buffer, and Parley's control messages
// (docs/protocol.md §1.3–1.4) on a data channel named "parley". Signalling is one
// request: POST /webrtc/offer with the offer, ICE gathered (no trickle).

// Resolves once ICE gathering is complete (the offer then lists every candidate).
function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}

// Keeps only the candidates on `address` (a test keeps media on loopback).
function onlyCandidates(sdp, address) {
  return sdp
    .split("\r\n")
    .filter((line) => !line.startsWith("a=candidate:") || line.split(" ")[4] === address)
    .join("\r\n");
}

// The data channel dressed as the WebSocket the page already drives (send, close,
// readyState, onopen/onmessage/onclose).
class ChannelSocket {
  constructor(pc, channel) {
    this.pc = pc;
    this.channel = channel;
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    channel.onopen = () => this.onopen && this.onopen();
    channel.onmessage = (e) => this.onmessage && this.onmessage(e);
    channel.onclose = () => this.onclose && this.onclose({ code: 1000, reason: "" });
  }

  get readyState() {
    const state = { connecting: 0, open: 1, closing: 2, closed: 3 }[this.channel.readyState];
    return state === undefined ? 3 : state;
  }

  send(data) {
    if (this.channel.readyState === "open") this.channel.send(data);
  }

  close() {
    this.channel.close();
    this.pc.close();
  }
}

// Connects `mic` (a MediaStream) to conversation `id`; `audio` is the element the
// reply plays in. Returns {socket, pc}.
export async function connectWebRTC(mic, id, audio, { loopbackOnly = false } = {}) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  for (const track of mic.getAudioTracks()) pc.addTrack(track, mic);
  const channel = pc.createDataChannel("parley");
  pc.ontrack = (e) => {
    audio.srcObject = e.streams[0] || new MediaStream([e.track]);
    audio.play().catch(() => {});
  };
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  let sdp = pc.localDescription.sdp;
  if (loopbackOnly) sdp = onlyCandidates(sdp, "127.0.0.1");
  const res = await fetch("webrtc/offer", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sdp, type: "offer", conversation_id: id }),
  });
  if (!res.ok) {
    pc.close();
    throw new Error(`POST /webrtc/offer: HTTP ${res.status}`);
  }
  await pc.setRemoteDescription(await res.json());
  return { socket: new ChannelSocket(pc, channel), pc };
}

// Reply audio heard so far: the inbound RTP statistics' duration and energy; the
// server sends silence between replies, so only audible stretches count.
export class PlayoutMeter {
  constructor(pc) {
    this.pc = pc;
    this.audibleMs = 0;
    this.sentMs = 0; // microphone audio the browser captured for the call
    this._duration = 0;
    this._energy = 0;
  }

  async poll() {
    const report = await this.pc.getStats();
    report.forEach((s) => {
      if (s.type === "media-source" && s.kind === "audio" && s.totalSamplesDuration) {
        this.sentMs = s.totalSamplesDuration * 1000;
      }
      if (s.type !== "inbound-rtp" || s.kind !== "audio") return;
      const duration = s.totalSamplesDuration || 0;
      const energy = s.totalAudioEnergy || 0;
      const dt = duration - this._duration;
      // Mean power over the interval: audioLevel² averaged; -40 dBFS is audible.
      if (dt > 0 && (energy - this._energy) / dt > 1e-4) this.audibleMs += dt * 1000;
      this._duration = duration;
      this._energy = energy;
    });
    return this.audibleMs;
  }
}
