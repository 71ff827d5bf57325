#!/usr/bin/env node
// Simulated Twilio callers for bench/calls.py: N Media Streams WebSockets in ONE Node
// process, at real-time pace, speaking Twilio's exact JSON.
//
// Each call sends `connected` and `start`, then one 20 ms µ-law `media` frame every
// 20 ms (calls are spread evenly over the 20 ms period, as real calls are not in
// phase), then `stop`. Marks the server sends are echoed back when the audio before
// them would have finished playing (a per-call playout clock), as Twilio does. Every
// second each call sends a 100 ms tone burst whose frequency (one of 8) names it; the
// echo delay is the time from sending the burst's first frame to receiving a media
// message whose decoded µ-law has the burst's energy at that frequency.
//
// One 2 ms timer drives every call (no timer per call), so the generator stays light;
// it reports its own CPU time and how late its frames went out.
//
// LOADGEN_TRACE=1 adds "trace": [[burst sent at (ms), echo delay (ms)], ...] to the result.
//
// stdout: one JSON object per line: {"type":"ready"}, {"type":"done"} (the measured
// window's start and end, for the caller's CPU snapshots), then {"type":"result",...}.
"use strict";

const WebSocket = require("ws");

// ------------------------------------------------------------------------- options
function parseArgs(argv) {
  const opts = {
    url: "ws://127.0.0.1:8000/twilio/stream",
    calls: 1,
    duration: 20,
    grace: 1.5,
    connectConcurrency: 50,
    connectTimeout: 20,
  };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in opts)) throw new Error(`unknown option ${argv[i]}`);
    const value = argv[i + 1];
    opts[key] = typeof opts[key] === "number" ? Number(value) : value;
  }
  return opts;
}

const opts = parseArgs(process.argv);
const FRAME_MS = 20;
const FRAME_BYTES = 160; // 20 ms of µ-law at 8 kHz
const TICK_MS = 2;
const BURST_FRAMES = 5; // 100 ms
const BURST_EVERY_FRAMES = 50; // once a second
const FREQS = [500, 700, 900, 1100, 1300, 1500, 1700, 1900];
const BURST_AMPLITUDE = 8000;
const NOISE_AMPLITUDE = 60;
// RMS above this in a received chunk is a burst (noise is ~40, a burst ~5600).
const ON_RMS = 1500;
const OFF_RMS = 500;

// ----------------------------------------------------------------------- G.711 µ-law
function ulawEncodeSample(sample) {
  const BIAS = 0x84;
  const CLIP = 32635;
  let sign = 0;
  if (sample < 0) {
    sample = -sample;
    sign = 0x80;
  }
  if (sample > CLIP) sample = CLIP;
  sample += BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (sample & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (sample >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

const ULAW_DECODE = new Int16Array(256);
for (let i = 0; i < 256; i++) {
  const u = ~i & 0xff;
  const exponent = (u >> 4) & 0x07;
  const mantissa = u & 0x0f;
  let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
  ULAW_DECODE[i] = u & 0x80 ? -magnitude : magnitude;
}

function encodeFrame(samples) {
  const out = Buffer.alloc(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = ulawEncodeSample(Math.round(samples[i]));
  return out;
}

// Pre-built payloads (base64): a few frames of low noise, and each burst's frames.
let rngState = 12345;
function rand() {
  rngState = (rngState * 1103515245 + 12345) & 0x7fffffff;
  return rngState / 0x7fffffff;
}
const NOISE = [];
for (let f = 0; f < 8; f++) {
  const s = new Float64Array(FRAME_BYTES);
  for (let i = 0; i < FRAME_BYTES; i++) s[i] = (rand() * 2 - 1) * NOISE_AMPLITUDE;
  NOISE.push(encodeFrame(s).toString("base64"));
}
const BURSTS = FREQS.map((freq) => {
  const frames = [];
  for (let f = 0; f < BURST_FRAMES; f++) {
    const s = new Float64Array(FRAME_BYTES);
    for (let i = 0; i < FRAME_BYTES; i++) {
      const n = f * FRAME_BYTES + i;
      s[i] = BURST_AMPLITUDE * Math.sin((2 * Math.PI * freq * n) / 8000);
    }
    frames.push(encodeFrame(s).toString("base64"));
  }
  return frames;
});

// Which of FREQS dominates `pcm` (Goertzel power at each).
const GOERTZEL_COEFF = FREQS.map((f) => 2 * Math.cos((2 * Math.PI * f) / 8000));
function dominantFreq(pcm, from) {
  let best = -1;
  let bestPower = -1;
  for (let k = 0; k < FREQS.length; k++) {
    const c = GOERTZEL_COEFF[k];
    let s1 = 0;
    let s2 = 0;
    for (let i = from; i < pcm.length; i++) {
      const s0 = pcm[i] + c * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
    const power = s1 * s1 + s2 * s2 - c * s1 * s2;
    if (power > bestPower) {
      bestPower = power;
      best = k;
    }
  }
  return best;
}

const PAYLOAD_KEY = Buffer.from('"payload":'); // then an optional space (json.dumps) and '"'
const SPACE = 0x20;
const QUOTE = 0x22;

// ------------------------------------------------------------------------- one call
const now = () => performance.now();
const results = {
  delays: [],
  burstsSent: 0,
  burstsEchoed: 0,
  sentBytes: 0,
  recvBytes: 0,
  recvMessages: 0,
  marksEchoed: 0,
  lateFramesOver10ms: 0,
  maxLatenessMs: 0,
  connected: 0,
  failed: 0,
  closedEarly: 0,
  closeReasons: {},
  perCallReturned: [],
};
const lateness = new Uint32Array(1001); // 0..1000 ms histogram of frame send lateness

class Call {
  constructor(index) {
    this.index = index;
    const id = String(index).padStart(32, "0");
    this.streamSid = "MZ" + id;
    this.callSid = "CA" + id;
    this.seq = 0;
    this.chunk = 0;
    this.ws = null;
    this.open = false;
    this.ended = false;
    this.t0 = 0; // time of media frame 0
    this.next = 0; // index of the next media frame
    this.burstOffset = Math.floor(rand() * BURST_EVERY_FRAMES); // stagger bursts
    this.burstSentAt = new Array(FREQS.length).fill(-1);
    this.inBurst = false;
    this.playEnd = 0; // when the audio received so far would have finished playing
    this.marks = []; // [dueTime, name] in order
    this.markHead = 0;
    this.sent = 0;
    this.recv = 0;
    this.prefix = '{"event":"media","sequenceNumber":"';
    this.streamSuffix = '"},"streamSid":"' + this.streamSid + '"}';
  }

  connect(url) {
    return new Promise((resolve) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      this.ws = ws;
      let settled = false;
      const timer = setTimeout(() => {
        if (!settled) {
          settled = true;
          results.failed++;
          ws.terminate();
          resolve(false);
        }
      }, opts.connectTimeout * 1000);
      ws.on("open", () => {
        ws.send(JSON.stringify({ event: "connected", protocol: "Call", version: "1.0.0" }));
        ws.send(
          JSON.stringify({
            event: "start",
            sequenceNumber: String(++this.seq),
            start: {
              accountSid: "AC" + "0".repeat(32),
              streamSid: this.streamSid,
              callSid: this.callSid,
              tracks: ["inbound"],
              customParameters: { from: "+1415555" + String(this.index).padStart(4, "0") },
              mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 },
            },
            streamSid: this.streamSid,
          })
        );
        this.open = true;
        results.connected++;
        settled = true;
        clearTimeout(timer);
        resolve(true);
      });
      ws.on("message", (data, isBinary) => this.onMessage(data, isBinary));
      ws.on("close", (code, reason) => {
        if (this.open && !this.ended) {
          results.closedEarly++;
          const key = `${code} ${reason}`;
          results.closeReasons[key] = (results.closeReasons[key] || 0) + 1;
        }
        this.open = false;
      });
      ws.on("error", () => {
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          results.failed++;
          resolve(false);
        }
      });
    });
  }

  sendMedia(t, payload) {
    this.chunk++;
    const ts = this.chunk * FRAME_MS;
    this.ws.send(
      this.prefix +
        ++this.seq +
        '","media":{"track":"inbound","chunk":"' +
        this.chunk +
        '","timestamp":"' +
        ts +
        '","payload":"' +
        payload +
        this.streamSuffix
    );
    this.sent += FRAME_BYTES;
  }

  // Send every frame that is due by `t` (catching up if the loop was late).
  pump(t) {
    if (!this.open) return;
    const due = this.t0 + this.next * FRAME_MS;
    if (due > t) return; // marks go out with the next media frame (Twilio's 20 ms clock)
    const sock = this.ws._socket;
    sock.cork(); // this tick's frames leave in one write
    this.pumpFrames(t);
    process.nextTick(() => sock.uncork());
  }

  pumpFrames(t) {
    while (this.open && this.t0 + this.next * FRAME_MS <= t) {
      const due = this.t0 + this.next * FRAME_MS;
      const late = t - due;
      lateness[Math.min(1000, Math.floor(late))]++;
      if (late > results.maxLatenessMs) results.maxLatenessMs = late;
      const k = (this.next + this.burstOffset) % BURST_EVERY_FRAMES;
      if (k < BURST_FRAMES) {
        const burst = Math.floor((this.next + this.burstOffset) / BURST_EVERY_FRAMES);
        const fi = burst % FREQS.length;
        if (k === 0) {
          this.burstSentAt[fi] = t;
          results.burstsSent++;
        }
        this.sendMedia(t, BURSTS[fi][k]);
      } else {
        this.sendMedia(t, NOISE[this.next & 7]);
      }
      this.next++;
    }
    // Marks whose audio has "played" go back, in order, as Twilio echoes them.
    const marks = this.marks;
    while (this.markHead < marks.length && marks[this.markHead][0] <= t) {
      this.sendMark(marks[this.markHead][1]);
      this.markHead++;
    }
    if (this.markHead > 64) {
      marks.splice(0, this.markHead);
      this.markHead = 0;
    }
  }

  sendMark(name) {
    if (!this.open) return;
    this.ws.send(
      '{"event":"mark","sequenceNumber":"' +
        ++this.seq +
        '","streamSid":"' +
        this.streamSid +
        '","mark":{"name":' +
        JSON.stringify(name) +
        "}}"
    );
    results.marksEchoed++;
  }

  onMessage(data, isBinary) {
    const t = now();
    if (isBinary) return;
    // Media, the bulk, is picked out without a full JSON parse; the rest is parsed.
    const at = data.indexOf(PAYLOAD_KEY);
    if (at >= 0) {
      let start = at + PAYLOAD_KEY.length;
      while (data[start] === SPACE) start++;
      start++; // the opening quote
      const audio = Buffer.from(data.toString("latin1", start, data.indexOf(QUOTE, start)), "base64");
      this.recv += audio.length;
      results.recvMessages++;
      this.playEnd = Math.max(t, this.playEnd) + audio.length / 8;
      this.detect(t, audio);
      return;
    }
    const msg = JSON.parse(data.toString());
    if (msg.event === "mark") {
      this.marks.push([Math.max(t, this.playEnd), msg.mark.name]);
    } else if (msg.event === "clear") {
      // Twilio drops the buffered audio and echoes the pending marks at once.
      for (let i = this.markHead; i < this.marks.length; i++) this.sendMark(this.marks[i][1]);
      this.marks = [];
      this.markHead = 0;
      this.playEnd = t;
    }
  }

  detect(t, audio) {
    let sum = 0;
    let first = -1;
    const pcm = new Int16Array(audio.length);
    for (let i = 0; i < audio.length; i++) {
      const v = ULAW_DECODE[audio[i]];
      pcm[i] = v;
      sum += v * v;
      if (first < 0 && (v > ON_RMS || v < -ON_RMS)) first = i;
    }
    const rms = Math.sqrt(sum / Math.max(1, audio.length));
    if (!this.inBurst && first >= 0 && rms > ON_RMS / 4) {
      this.inBurst = true;
      const fi = dominantFreq(pcm, first);
      const sentAt = this.burstSentAt[fi];
      if (sentAt >= 0) {
        results.delays.push(Math.round((t - sentAt) * 10) / 10);
        if (process.env.LOADGEN_TRACE) (results.trace = results.trace || []).push([Math.round(sentAt), Math.round((t - sentAt) * 10) / 10]);
        results.burstsEchoed++;
        this.burstSentAt[fi] = -1; // each burst is timed once
      }
    } else if (this.inBurst && rms < OFF_RMS) {
      this.inBurst = false;
    }
  }

  stop() {
    if (!this.open) return;
    this.ended = true;
    this.ws.send(
      JSON.stringify({
        event: "stop",
        sequenceNumber: String(++this.seq),
        streamSid: this.streamSid,
        stop: { accountSid: "AC" + "0".repeat(32), callSid: this.callSid },
      })
    );
    this.ws.close(1000);
  }
}

// --------------------------------------------------------------------------- main
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// A pipe is written asynchronously: `done` runs once the line is out (exit only then).
const emit = (obj, done) => process.stdout.write(JSON.stringify(obj) + "\n", done);

function percentileFromHistogram(hist, q) {
  let total = 0;
  for (const n of hist) total += n;
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i];
    if (seen >= q * total) return i;
  }
  return hist.length - 1;
}

async function main() {
  const calls = [];
  for (let i = 0; i < opts.calls; i++) calls.push(new Call(i));
  for (let i = 0; i < calls.length; i += opts.connectConcurrency) {
    await Promise.all(calls.slice(i, i + opts.connectConcurrency).map((c) => c.connect(opts.url)));
  }
  const live = calls.filter((c) => c.open);
  await sleep(200); // let the server finish every handshake
  const base = now() + 20;
  live.forEach((c, i) => {
    c.t0 = base + (i * FRAME_MS) / live.length; // spread over the 20 ms period
  });
  const cpu0 = process.cpuUsage();
  emit({ type: "ready", calls: live.length });
  const end = base + opts.duration * 1000;

  let sending = true;
  let cpuWindow = null;
  const timer = setInterval(() => {
    const t = now();
    if (sending && t >= end) {
      sending = false;
      for (const c of live) c.next = Infinity; // no more media
      cpuWindow = process.cpuUsage(cpu0);
      emit({ type: "done" });
    }
    for (const c of live) {
      if (sending) c.pump(Math.min(t, end - 0.001));
      else c.pump(t);
    }
  }, TICK_MS);

  await sleep(end - now() + opts.grace * 1000);
  clearInterval(timer);
  const cpu = cpuWindow || process.cpuUsage(cpu0);
  for (const c of live) {
    results.sentBytes += c.sent;
    results.recvBytes += c.recv;
    results.perCallReturned.push(c.sent ? Math.round((c.recv / c.sent) * 10000) / 10000 : 0);
    c.stop();
  }
  await sleep(300);
  const result = {
    type: "result",
    calls: opts.calls,
    duration: opts.duration,
    ...results,
    framesLateP99Ms: percentileFromHistogram(lateness, 0.99),
    loadgenCpuS: (cpu.user + cpu.system) / 1e6,
    loadgenUserS: cpu.user / 1e6,
    loadgenWallS: opts.duration,
  };
  for (const c of calls) if (c.ws) c.ws.terminate();
  emit(result, () => process.exit(0));
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
