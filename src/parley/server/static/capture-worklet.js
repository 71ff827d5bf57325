// Microphone capture on the audio thread: float samples in, PCM16 little-endian
// frames of `frameMs` at `targetRate` out (posted to the page as ArrayBuffers).
//
// The page runs its AudioContext at 24 kHz when the browser allows it, so this
// is a plain float → int16 conversion. When the context had to fall back to
// the device rate and that rate is not one the protocol accepts, the page asks
// for `targetRate` 24000 and the worklet resamples (see LinearResampler).

import { LinearResampler } from "./linear-resampler.js";

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate = sampleRate, frameMs = 20 } = options.processorOptions || {};
    this.resampler = targetRate === sampleRate ? null : new LinearResampler(sampleRate, targetRate);
    this.frameSamples = Math.round((targetRate * frameMs) / 1000);
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.running = true;
    this.push = this.push.bind(this);
    this.port.onmessage = (event) => {
      if (event.data === "stop") this.running = false;
    };
  }

  push(x) {
    // The float → int16 mapping OpenAI's clients use: clamp, then scale the
    // negative half by 0x8000 and the positive half by 0x7fff.
    const s = x < -1 ? -1 : x > 1 ? 1 : x;
    this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    if (this.filled === this.frameSamples) {
      // Transfer, not copy: the buffer moves to the page without a memcpy.
      this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
      this.frame = new Int16Array(this.frameSamples); // the old one is detached now
      this.filled = 0;
    }
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      if (this.resampler) this.resampler.process(channel, this.push);
      else for (let i = 0; i < channel.length; i++) this.push(channel[i]);
    }
    return this.running;
  }
}

registerProcessor("parley-capture", CaptureProcessor);
