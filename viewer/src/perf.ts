// Timings the benchmark and the browser tests read (window.__ygPerf). No patient data here.

export interface PerfState {
  marks: Record<string, number>;
  /** Frames drawn by the main image viewport since the page loaded. */
  rendered: number;
  /** Index of the image the main viewport shows. */
  index: number;
  /** Images in the main viewport's stack. */
  total: number;
}

declare global {
  interface Window { __ygPerf: PerfState }
}

window.__ygPerf = { marks: {}, rendered: 0, index: -1, total: 0 };

export function mark(name: string): void {
  window.__ygPerf.marks[name] = performance.now();
}

export function perf(): PerfState {
  return window.__ygPerf;
}
