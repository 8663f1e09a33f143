// A live waveform and level bar on a canvas, read from the player's AnalyserNode every animation frame.

export class Meter {
  constructor(canvas, levelElement, getAnalyser) {
    this.canvas = canvas;
    this.levelElement = levelElement; // role="meter" with a .level-fill bar inside
    this.fill = levelElement.querySelector(".level-fill");
    this.lastAnnounced = -1;
    this.getAnalyser = getAnalyser;
    this.buffer = null;
    requestAnimationFrame(() => this.#draw());
  }

  #draw() {
    requestAnimationFrame(() => this.#draw());
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(canvas.clientWidth * ratio);
    const height = Math.round(canvas.clientHeight * ratio);
    if (width === 0 || height === 0) return;
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const g = canvas.getContext("2d");
    const style = getComputedStyle(canvas);
    g.clearRect(0, 0, width, height);

    // Centre line, drawn even in silence so the meter reads as a meter.
    g.strokeStyle = style.getPropertyValue("--meter-grid").trim() || "#ccc";
    g.lineWidth = ratio;
    g.beginPath();
    g.moveTo(0, height / 2);
    g.lineTo(width, height / 2);
    g.stroke();

    const analyser = this.getAnalyser();
    let rms = 0;
    if (analyser) {
      if (!this.buffer || this.buffer.length !== analyser.fftSize) this.buffer = new Float32Array(analyser.fftSize);
      analyser.getFloatTimeDomainData(this.buffer);
      let sum = 0;
      g.strokeStyle = style.getPropertyValue("--meter-wave").trim() || "#2563eb";
      g.lineWidth = 2 * ratio;
      g.beginPath();
      const step = this.buffer.length / width;
      for (let x = 0; x < width; x++) {
        const v = this.buffer[Math.floor(x * step)];
        const y = (0.5 - v * 0.45) * height;
        if (x === 0) g.moveTo(x, y);
        else g.lineTo(x, y);
      }
      g.stroke();
      for (const v of this.buffer) sum += v * v;
      rms = Math.sqrt(sum / this.buffer.length);
    }
    // Level in dBFS mapped to 0..1 over -60..0 dB.
    const level = rms > 0 ? Math.max(0, 1 + (20 * Math.log10(rms)) / 60) : 0;
    this.fill.style.transform = `scaleX(${level.toFixed(3)})`;
    const percent = Math.round(level * 100);
    if (percent !== this.lastAnnounced) {
      this.lastAnnounced = percent;
      this.levelElement.setAttribute("aria-valuenow", String(percent));
    }
  }
}
