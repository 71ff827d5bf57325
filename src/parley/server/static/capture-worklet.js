// Microphone capture on the audio thread: float samples in, PCM16 little-endian
// frames of `frameMs` at `targetRate` out (posted to the page as ArrayBuffers).
//
// The page runs its AudioContext at 24 kHz when the browser allows it, so this
// is a plain float → int16 conversion. When the context had to fall back to
// the device rate and that rate is not one the protocol accepts, the page asks
// for `targetRate` 24000 and the worklet resamples (see LinearResampler).

// Streaming linear interpolation, preceded by a moving average over the
// decimation factor when downsampling so content above the new Nyquist rate
// is damped instead of folded back. Speech is band-limited enough that this
// is transparent for a voice call; a polyphase filter would be overkill here.
// (Duplicated in playback-worklet.js: each worklet module is self-contained.)
class LinearResampler {
  constructor(inRate, outRate) {
    this.step = inRate / outRate; // input samples per output sample
    this.t = 0; // position of the next output sample; -1 is `prev`
    this.prev = 0;
    const taps = Math.max(1, Math.round(this.step));
    this.ring = new Float32Array(taps);
    this.ringPos = 0;
    this.ringSum = 0;
  }

  // Calls emit(sample) for each output sample of `input` (a Float32Array).
  process(input, emit) {
    const ring = this.ring;
    const smoothed = ring.length === 1 ? input : new Float32Array(input.length);
    if (ring.length > 1) {
      for (let i = 0; i < input.length; i++) {
        this.ringSum += input[i] - ring[this.ringPos];
        ring[this.ringPos] = input[i];
        this.ringPos = (this.ringPos + 1) % ring.length;
        smoothed[i] = this.ringSum / ring.length;
      }
    }
    const n = smoothed.length;
    let t = this.t;
    while (t <= n - 1) {
      const i = Math.floor(t);
      const frac = t - i;
      const a = i < 0 ? this.prev : smoothed[i];
      emit(frac === 0 ? a : a + (smoothed[i + 1] - a) * frac);
      t += this.step;
    }
    this.t = t - n;
    if (n > 0) this.prev = smoothed[n - 1];
  }
}

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
