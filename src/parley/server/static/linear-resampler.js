// The resampler both worklets use when the browser's rate is not the wire rate.
// Streaming linear interpolation, preceded by a moving average over the
// decimation factor when downsampling so content above the new Nyquist rate
// is damped instead of folded back. Speech is band-limited enough that this
// is transparent for a voice call; a polyphase filter would be overkill here.
export class LinearResampler {
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
