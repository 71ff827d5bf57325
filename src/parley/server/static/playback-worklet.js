// Reply playback on the audio thread: a small jitter buffer of PCM16 chunks,
// each tagged with the response it belongs to.
//
// Messages from the page:
//   {type: "config", wireRate}        rate of the PCM16 that follows
//   {type: "audio", id, pcm}          pcm: ArrayBuffer of PCM16 LE at wireRate
//   {type: "end", id}                 no more audio will come for response `id`
//   {type: "clear"}                   drop everything queued, now (barge-in)
// Messages to the page (ms are of audio actually rendered, per response):
//   {type: "progress", id, ms, done, totalMs}   every `reportMs` while playing, and
//                                               once with done: true at the end
//   {type: "cleared", reports: [{id, ms}], totalMs}   answer to "clear"

import { LinearResampler } from "./linear-resampler.js";

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { prebufferMs = 80, reportMs = 200 } = options.processorOptions || {};
    // Wait for this much audio before starting (or restarting after an
    // underrun): network jitter then eats into the buffer, not into the sound.
    this.prebuffer = Math.round((sampleRate * prebufferMs) / 1000);
    this.reportEvery = Math.round((sampleRate * reportMs) / 1000);
    this.resampler = null;
    this.queue = []; // {id, samples: Float32Array at sampleRate, offset}
    this.queued = 0; // samples waiting in `queue`
    this.ended = new Set(); // responses whose audio is complete
    this.played = new Map(); // response id → samples rendered
    this.sinceReport = 0;
    this.total = 0; // samples rendered, all responses
    this.playing = false;
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  ms(samples) {
    return (samples * 1000) / sampleRate;
  }

  onMessage(msg) {
    if (msg.type === "config") {
      this.resampler = msg.wireRate === sampleRate ? null : new LinearResampler(msg.wireRate, sampleRate);
    } else if (msg.type === "audio") {
      this.enqueue(msg.id, new Int16Array(msg.pcm));
    } else if (msg.type === "end") {
      this.ended.add(msg.id);
      this.finishIfDone(msg.id);
    } else if (msg.type === "clear") {
      this.clear();
    }
  }

  enqueue(id, pcm) {
    let samples;
    if (this.resampler) {
      const out = [];
      const floats = Float32Array.from(pcm, (s) => s / 0x8000);
      this.resampler.process(floats, (x) => out.push(x));
      samples = Float32Array.from(out);
    } else {
      samples = Float32Array.from(pcm, (s) => s / 0x8000);
    }
    if (!this.played.has(id)) this.played.set(id, 0);
    this.queue.push({ id, samples, offset: 0 });
    this.queued += samples.length;
  }

  clear() {
    const reports = [];
    const ids = new Set(this.queue.map((chunk) => chunk.id));
    for (const id of ids) reports.push({ id, ms: this.ms(this.played.get(id) || 0) });
    for (const id of ids) this.played.delete(id);
    this.queue = [];
    this.queued = 0;
    this.playing = false;
    this.port.postMessage({ type: "cleared", reports, totalMs: this.ms(this.total) });
  }

  // A response is done once it is ended and none of its audio is queued.
  finishIfDone(id) {
    if (!this.ended.has(id) || !this.played.has(id)) return;
    if (this.queue.some((chunk) => chunk.id === id)) return;
    this.port.postMessage({
      type: "progress", id, ms: this.ms(this.played.get(id)), done: true, totalMs: this.ms(this.total),
    });
    this.played.delete(id);
    this.ended.delete(id);
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    if (!this.playing) {
      const last = this.queue[this.queue.length - 1];
      // Start once the buffer is full enough, or at once if the reply is
      // shorter than the buffer and complete.
      this.playing = this.queued >= this.prebuffer || (last !== undefined && this.ended.has(last.id));
    }
    let written = 0;
    while (this.playing && written < out.length && this.queue.length > 0) {
      const chunk = this.queue[0];
      const n = Math.min(out.length - written, chunk.samples.length - chunk.offset);
      out.set(chunk.samples.subarray(chunk.offset, chunk.offset + n), written);
      chunk.offset += n;
      written += n;
      this.queued -= n;
      this.played.set(chunk.id, this.played.get(chunk.id) + n);
      if (chunk.offset === chunk.samples.length) {
        this.queue.shift();
        this.finishIfDone(chunk.id);
      }
    }
    out.fill(0, written); // underrun or idle: silence
    if (this.playing && this.queue.length === 0) this.playing = false; // rebuffer before resuming
    this.total += written;
    this.sinceReport += written;
    if (written > 0 && this.sinceReport >= this.reportEvery && this.queue.length > 0) {
      this.sinceReport = 0;
      const id = this.queue[0].id;
      this.port.postMessage({
        type: "progress", id, ms: this.ms(this.played.get(id)), done: false, totalMs: this.ms(this.total),
      });
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    return true;
  }
}

registerProcessor("parley-playback", PlaybackProcessor);
