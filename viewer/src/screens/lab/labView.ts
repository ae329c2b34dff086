// Lab view: values with units, reference ranges and coloured flags, critical values called out,
// and each value's trend across the patient's earlier results (any institution).
import * as api from '../../api';
import type { LabObservation, LabResultSet, LabTrendPoint, WorklistItemDetail } from '../../api';
import { formatDateTime, t } from '../../i18n';
import { clear, h } from '../../ui/dom';

const CRITICAL_FLAGS = new Set(['HH', 'LL', 'AA']);

export function flagClass(o: LabObservation): string {
  if (o.is_critical || o.abnormal_flags.some((f) => CRITICAL_FLAGS.has(f))) return 'flag-critical';
  if (o.abnormal_flags.some((f) => f === 'H' || f === '>')) return 'flag-high';
  if (o.abnormal_flags.some((f) => f === 'L' || f === '<')) return 'flag-low';
  if (o.abnormal_flags.some((f) => f && f !== 'N')) return 'flag-abnormal';
  return '';
}

function flagText(o: LabObservation): string {
  return o.abnormal_flags.filter((f) => f && f !== 'N')
    .map((f) => `${f} ${t(`flag.${f}`) === `flag.${f}` ? '' : t(`flag.${f}`)}`.trim()).join(' ');
}

/** A small inline line chart of numeric values, oldest first. */
function sparkline(points: LabTrendPoint[]): SVGElement | string {
  const nums = points.filter((p) => p.numeric_value !== null) as (LabTrendPoint & { numeric_value: number })[];
  if (nums.length < 2) return nums.length ? String(nums[0].numeric_value) : '';
  const w = 120;
  const hgt = 28;
  const vs = nums.map((p) => p.numeric_value);
  const lo = Math.min(...vs);
  const span = Math.max(...vs) - lo || 1;
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('width', String(w));
  svg.setAttribute('height', String(hgt));
  svg.setAttribute('class', 'sparkline');
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', nums.map((p, i) =>
    `${(i / (nums.length - 1)) * (w - 4) + 2},${hgt - 2 - ((p.numeric_value - lo) / span) * (hgt - 4)}`).join(' '));
  line.setAttribute('fill', 'none');
  line.setAttribute('stroke', '#1565c0');
  svg.appendChild(line);
  const title = document.createElementNS(ns, 'title');
  title.textContent = nums.map((p) => `${formatDateTime(p.observed_at)} ${p.value}`).join('\n');
  svg.appendChild(title);
  return svg;
}

async function trends(item: WorklistItemDetail): Promise<Map<string, LabTrendPoint[]>> {
  const out = new Map<string, LabTrendPoint[]>();
  if (!item.patient.id) return out;
  const p = await api.patient(item.patient.id);
  const labItems = p.history.filter((x) => x.kind === 'lab').slice(0, 12).reverse();
  const sets = await Promise.all(labItems.map((x) =>
    api.labResults(x.id).then((rs) => rs.map((r) => ({ r, inst: x.institution.code })))
      .catch(() => [] as { r: LabResultSet; inst: string }[])));
  for (const { r, inst } of sets.flat()) {
    for (const o of r.observations) {
      const list = out.get(o.code) ?? [];
      list.push({ observed_at: o.observed_at ?? r.observed_at, value: o.value,
                  numeric_value: o.numeric_value, units: o.units,
                  abnormal_flags: o.abnormal_flags, institution: inst });
      out.set(o.code, list);
    }
  }
  for (const list of out.values()) {
    list.sort((a, b) => String(a.observed_at).localeCompare(String(b.observed_at)));
  }
  return out;
}

export function renderLabView(root: HTMLElement, item: WorklistItemDetail): () => void {
  const body = h('div', { class: 'lab-body' }, t('image.loading'));
  clear(root, h('div', { class: 'lab-view' }, h('h3', {}, t('lab.title')), body));
  void (async () => {
    const path = api.labResultsPath(item.id);
    let sets: LabResultSet[];
    try {
      sets = await api.labResults(item.id);
    } catch (e) {
      const absent = e instanceof api.ApiError && e.status === 404
        && !(await api.hasRoute(path.replace(String(item.id), '{item_id}')));
      clear(body, h('p', { class: absent ? 'muted' : 'error', 'data-testid': 'lab-error' },
        absent ? t('lab.unavailable', { path }) : t('error', { detail: String(e) })));
      return;
    }
    const critical = sets.flatMap((s) => s.observations).filter((o) => flagClass(o) === 'flag-critical');
    const trendCells = new Map<string, HTMLElement>();
    clear(body,
      critical.length ? h('div', { class: 'critical-callout', 'data-testid': 'lab-critical' },
        t('lab.critical_banner', { items: critical.map((o) =>
          `${o.name || o.code} ${o.value} ${o.units}`).join('；') })) : null,
      sets.length ? sets.map((s) => h('section', { class: 'lab-set' },
        h('h4', {}, `${s.service_name || s.service_code}`, ' ',
          h('span', { class: 'muted' }, formatDateTime(s.observed_at), ' ', s.result_status)),
        h('table', { class: 'lab-table', 'data-testid': 'lab-table' },
          h('thead', {}, h('tr', {}, ['item', 'value', 'units', 'range', 'flag', 'trend']
            .map((c) => h('th', {}, t(`lab.${c}`))))),
          h('tbody', {}, s.observations.map((o) => {
            const cell = h('td', { class: 'trend' });
            trendCells.set(o.code, cell);
            return h('tr', { class: flagClass(o), 'data-testid': 'lab-row', 'data-code': o.code },
              h('td', {}, o.name || o.code), h('td', { class: 'value' }, o.value),
              h('td', {}, o.units), h('td', {}, o.reference_range),
              h('td', { class: 'flag' }, flagText(o)), cell);
          }))))) : h('p', { class: 'muted' }, t('lab.no_results')));
    try {
      const byCode = await trends(item);
      for (const [code, cell] of trendCells) {
        const pts = byCode.get(code) ?? [];
        clear(cell, sparkline(pts), pts.length > 1 ? h('span', { class: 'muted' }, ` (${pts.length})`) : null);
      }
    } catch {
      /* trends are a help, not essential */
    }
  })();
  return () => undefined;
}
