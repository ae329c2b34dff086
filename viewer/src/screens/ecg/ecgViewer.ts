// ECG viewer: the 12-lead page drawn in the browser from the samples (25 mm/s, 10 mm/mV, 1 and
// 5 mm grid, calibration pulse), zoom, one-lead view, time/voltage calipers, the automatic
// measurements to confirm or edit, and the patient's earlier ECG beside it.
import * as api from '../../api';
import type { EcgSamples, WorklistItemDetail } from '../../api';
import { formatDateTime, t } from '../../i18n';
import { clear, h } from '../../ui/dom';

const MM_PER_S = 25;
const MM_PER_MV = 10;
const ROW_MM = 30;
const CAL_MM = 10; // calibration pulse area at the left of each row
const LAYOUT = [['I', 'aVR', 'V1', 'V4'], ['II', 'aVL', 'V2', 'V5'], ['III', 'aVF', 'V3', 'V6']];

/** Measurement keys shown for confirmation, with their units. */
export const MEASUREMENTS: [string, string, string][] = [
  ['heart_rate_bpm', 'ecg.hr', 'bpm'], ['rr_mean_ms', 'ecg.rr', 'ms'], ['pr_ms', 'ecg.pr', 'ms'],
  ['qrs_ms', 'ecg.qrs', 'ms'], ['qt_ms', 'ecg.qt', 'ms'],
  ['qtc_bazett_ms', 'ecg.qtc_bazett', 'ms'], ['qtc_fridericia_ms', 'ecg.qtc_fridericia', 'ms'],
  ['axis_deg', 'ecg.axis', '°'],
];

interface Strip { lead: string; x0: number; y0: number; t0: number; seconds: number }

export interface EcgPage {
  canvas: HTMLCanvasElement;
  strips: Strip[];
  pxPerMm: number;
}

function grid(ctx: CanvasRenderingContext2D, w: number, hgt: number, px: number): void {
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, w, hgt);
  for (let mm = 0; mm * px <= Math.max(w, hgt); mm++) {
    ctx.strokeStyle = mm % 5 === 0 ? '#f08c8c' : '#fbd5d5';
    ctx.lineWidth = mm % 5 === 0 ? 1 : 0.5;
    ctx.beginPath();
    ctx.moveTo(mm * px, 0); ctx.lineTo(mm * px, hgt);
    ctx.moveTo(0, mm * px); ctx.lineTo(w, mm * px);
    ctx.stroke();
  }
}

function calibration(ctx: CanvasRenderingContext2D, x: number, y: number, px: number): void {
  ctx.beginPath();
  ctx.moveTo(x, y);
  ctx.lineTo(x + 2 * px, y);
  ctx.lineTo(x + 2 * px, y - MM_PER_MV * px);
  ctx.lineTo(x + 7 * px, y - MM_PER_MV * px);
  ctx.lineTo(x + 7 * px, y);
  ctx.lineTo(x + 9 * px, y);
  ctx.stroke();
}

function trace(ctx: CanvasRenderingContext2D, s: EcgSamples, st: Strip, px: number): void {
  const values = s.leads[st.lead];
  if (!values) return;
  const fs = s.sampling_rate_hz;
  const i0 = Math.floor(st.t0 * fs);
  const i1 = Math.min(values.length, Math.floor((st.t0 + st.seconds) * fs));
  ctx.beginPath();
  for (let i = i0; i < i1; i++) {
    const x = st.x0 + ((i - i0) / fs) * MM_PER_S * px;
    const y = st.y0 - values[i] * MM_PER_MV * px;
    if (i === i0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  }
  ctx.stroke();
  ctx.fillStyle = '#000';
  ctx.font = `${Math.round(3.5 * px)}px sans-serif`;
  ctx.fillText(st.lead, st.x0 + px, st.y0 - 8 * px);
}

/** Draw the page (all leads, or one lead full-length) and return where each strip is. */
export function drawPage(s: EcgSamples, pxPerMm: number, lead: string | null): EcgPage {
  const seconds = Math.min(10, s.n_samples / s.sampling_rate_hz);
  const widthMm = CAL_MM + seconds * MM_PER_S + 5;
  const strips: Strip[] = [];
  if (lead) {
    strips.push({ lead, x0: CAL_MM, y0: ROW_MM, t0: 0, seconds });
  } else {
    const col = seconds / 4;
    LAYOUT.forEach((row, r) => row.forEach((name, c) => strips.push(
      { lead: name, x0: CAL_MM + c * col * MM_PER_S, y0: (r + 0.6) * ROW_MM, t0: c * col, seconds: col })));
    strips.push({ lead: 'II', x0: CAL_MM, y0: 3.6 * ROW_MM, t0: 0, seconds });
  }
  const rows = lead ? 1.5 : 4.2;
  const canvas = document.createElement('canvas');
  canvas.width = Math.round(widthMm * pxPerMm);
  canvas.height = Math.round(rows * ROW_MM * pxPerMm);
  const ctx = canvas.getContext('2d')!;
  grid(ctx, canvas.width, canvas.height, pxPerMm);
  ctx.strokeStyle = '#000';
  ctx.lineWidth = Math.max(1, pxPerMm * 0.25);
  const px = pxPerMm;
  for (const st of strips) {
    st.x0 *= px;
    st.y0 *= px;
    trace(ctx, s, st, px);
    if (st.t0 === 0) calibration(ctx, 0.5 * px, st.y0, px);
  }
  ctx.fillStyle = '#333';
  ctx.font = `${Math.round(3 * px)}px sans-serif`;
  ctx.fillText(t('ecg.speed'), canvas.width - 45 * px, canvas.height - 2 * px);
  return { canvas, strips, pxPerMm };
}

function measurementForm(item: WorklistItemDetail): HTMLElement {
  const m = (item.details.measurements ?? {}) as Record<string, number | null>;
  return h('form', { class: 'ecg-measurements', 'data-testid': 'ecg-measurements' },
    h('h4', {}, t('ecg.measurements')),
    MEASUREMENTS.map(([key, label, unit]) => h('label', {}, t(label),
      h('input', { name: key, type: 'number', step: 'any', value: m[key] ?? '',
                   'data-testid': `measure-${key}` }), unit)));
}

/** The measurements as confirmed (possibly edited) by the reader, for the report's fields. */
export function confirmedMeasurements(root: HTMLElement): Record<string, number> {
  const out: Record<string, number> = {};
  root.querySelectorAll<HTMLInputElement>('.ecg-measurements input').forEach((i) => {
    if (i.value !== '') out[i.name] = Number(i.value);
  });
  return out;
}

function pageView(samples: EcgSamples, testid: string): HTMLElement {
  let zoom = 4; // px per mm
  let lead: string | null = null;
  let caliper = false;
  const holder = h('div', { class: 'ecg-canvas', 'data-testid': testid });
  const result = h('div', { class: 'caliper-result', 'data-testid': `${testid}-caliper` });
  let page: EcgPage;

  const draw = () => {
    page = drawPage(samples, zoom, lead);
    page.canvas.dataset.lead = lead ?? 'all';
    clear(holder, page.canvas);
    attach(page.canvas);
  };

  function attach(canvas: HTMLCanvasElement): void {
    const overlay = document.createElement('canvas');
    overlay.width = canvas.width;
    overlay.height = canvas.height;
    overlay.className = 'ecg-overlay';
    holder.appendChild(overlay);
    const octx = overlay.getContext('2d')!;
    let start: [number, number] | null = null;
    const pos = (e: MouseEvent): [number, number] => {
      const r = overlay.getBoundingClientRect();
      return [(e.clientX - r.left) * (overlay.width / r.width),
              (e.clientY - r.top) * (overlay.height / r.height)];
    };
    overlay.addEventListener('mousedown', (e) => {
      if (caliper) start = pos(e);
    });
    overlay.addEventListener('mousemove', (e) => {
      if (!start) return;
      const [x, y] = pos(e);
      octx.clearRect(0, 0, overlay.width, overlay.height);
      octx.strokeStyle = '#1565c0';
      octx.lineWidth = 2;
      octx.beginPath();
      octx.moveTo(start[0], 0); octx.lineTo(start[0], overlay.height);
      octx.moveTo(x, 0); octx.lineTo(x, overlay.height);
      octx.moveTo(start[0], start[1]); octx.lineTo(x, start[1]);
      octx.moveTo(x, start[1]); octx.lineTo(x, y);
      octx.stroke();
    });
    overlay.addEventListener('mouseup', (e) => {
      if (!start) return;
      const [x, y] = pos(e);
      const ms = Math.abs(x - start[0]) / page.pxPerMm / MM_PER_S * 1000;
      const mv = (start[1] - y) / page.pxPerMm / MM_PER_MV;
      const bpm = ms > 0 ? Math.round(60000 / ms) : 0;
      result.textContent = t('ecg.caliper_result',
        { ms: Math.round(ms), bpm, mv: mv.toFixed(2) });
      result.dataset.ms = String(Math.round(ms));
      result.dataset.mv = mv.toFixed(3);
      start = null;
    });
    overlay.addEventListener('click', (e) => {
      if (caliper) return;
      const [x, y] = pos(e);
      const hit = page.strips.find((s) => x >= s.x0 && x <= s.x0 + s.seconds * MM_PER_S * page.pxPerMm
        && Math.abs(y - s.y0) < (ROW_MM / 2) * page.pxPerMm);
      if (hit && !lead) {
        lead = hit.lead;
        draw();
      }
    });
  }

  const caliperBtn: HTMLButtonElement = h('button', { 'data-testid': `${testid}-caliper-toggle`,
    onclick: () => {
      caliper = !caliper;
      caliperBtn.classList.toggle('active', caliper);
      result.textContent = caliper ? t('ecg.caliper_hint') : '';
    } }, t('ecg.caliper'));
  const bar = h('div', { class: 'toolbar' },
    h('button', { 'data-testid': `${testid}-zoom-in`, onclick: () => { zoom = Math.min(12, zoom + 1); draw(); } },
      t('ecg.zoom_in')),
    h('button', { 'data-testid': `${testid}-zoom-out`, onclick: () => { zoom = Math.max(2, zoom - 1); draw(); } },
      t('ecg.zoom_out')),
    h('button', { 'data-testid': `${testid}-all-leads`, onclick: () => { lead = null; draw(); } },
      t('ecg.all_leads')),
    caliperBtn, result);
  const view = h('div', { class: 'ecg-page' }, bar, holder);
  draw();
  return view;
}

export function renderEcgViewer(root: HTMLElement, item: WorklistItemDetail): () => void {
  const main = h('div', { class: 'ecg-main' }, t('image.loading'));
  const prior = h('div', { class: 'ecg-prior', 'data-testid': 'ecg-prior' });
  clear(root, h('div', { class: 'ecg-viewer' },
    h('h3', {}, t('ecg.title')), main, measurementForm(item), h('h4', {}, t('ecg.prior')), prior));
  void (async () => {
    try {
      clear(main, pageView(await api.ecgSamples(item.id, 10), 'ecg'));
    } catch (e) {
      clear(main, h('p', { class: 'error' },
        t('error', { detail: e instanceof api.ApiError ? e.detail : String(e) })));
    }
    if (!item.patient.id) {
      clear(prior, h('span', { class: 'muted' }, t('ecg.no_prior')));
      return;
    }
    try {
      const p = await api.patient(item.patient.id);
      const earlier = p.history.find((x) => x.kind === 'ecg' && x.id !== item.id
        && new Date(x.received_at) <= new Date(item.received_at));
      if (!earlier) {
        clear(prior, h('span', { class: 'muted' }, t('ecg.no_prior')));
        return;
      }
      clear(prior, h('div', { class: 'muted' }, formatDateTime(earlier.received_at), ' ',
        earlier.institution.name ?? earlier.institution.code),
      pageView(await api.ecgSamples(earlier.id, 10), 'ecg-prior-page'));
    } catch {
      clear(prior, h('span', { class: 'muted' }, t('ecg.no_prior')));
    }
  })();
  return () => undefined;
}
