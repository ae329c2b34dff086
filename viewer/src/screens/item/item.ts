// One worklist item: its header, the viewer for its kind (images, ECG, lab) and the report editor.
import * as api from '../../api';
import type { WorklistItemDetail } from '../../api';
import { countdown, formatDateTime, t } from '../../i18n';
import { confirmedMeasurements, renderEcgViewer } from '../ecg/ecgViewer';
import { renderImageViewer } from '../image/imageViewer';
import { renderLabView } from '../lab/labView';
import { renderReportEditor } from '../report/reportEditor';
import { DONE } from '../worklist/worklist';
import { mark } from '../../perf';
import { clear, h } from '../../ui/dom';

/** The ecg_rest template's fields from the (confirmed) automatic measurements. */
function ecgFieldDefaults(m: Record<string, number>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const pairs: [string, string][] = [['heart_rate', 'heart_rate_bpm'], ['pr_ms', 'pr_ms'],
    ['qrs_ms', 'qrs_ms'], ['qtc_ms', 'qtc_bazett_ms'], ['axis_deg', 'axis_deg']];
  for (const [field, key] of pairs) if (m[key] !== undefined) out[field] = Math.round(m[key]);
  return out;
}

function header(item: WorklistItemDetail): HTMLElement {
  return h('div', { class: 'item-head', 'data-testid': 'item-head' },
    h('a', { href: '#/', class: 'back', 'data-testid': 'back' }, '← ', t('back')),
    h('strong', { class: 'patient' }, item.patient.name),
    h('span', {}, item.patient.local_id ?? ''),
    h('span', { class: `prio prio-${item.priority}` }, t(`priority.${item.priority}`)),
    h('span', {}, t(`kind.${item.kind}`), ' ', [item.modality, item.body_part, item.description]
      .filter(Boolean).join(' · ')),
    h('span', {}, item.institution.name ?? item.institution.code),
    h('span', { 'data-testid': 'item-status', 'data-status': item.status },
      t(`status.${item.status}`)),
    DONE.has(item.status) ? null
      : h('span', { class: item.overdue ? 'due late' : 'due' }, countdown(item.due_at)),
    h('span', { class: 'muted' }, formatDateTime(item.received_at)),
    item.is_critical ? h('span', { class: 'badge critical', 'data-testid': 'item-critical' },
      `${t('critical')}: ${item.critical_reason ?? ''}`) : null);
}

export function renderItem(root: HTMLElement, itemId: number): () => void {
  const head = h('div');
  const viewer = h('section', { class: 'item-viewer' });
  const editor = h('section', { class: 'item-report' });
  clear(root, h('div', { class: 'item' }, head, h('div', { class: 'item-body' }, viewer, editor)));
  const teardowns: (() => void)[] = [];
  let closed = false;
  const refreshHead = async () => {
    try {
      clear(head, header(await api.worklistItem(itemId)));
    } catch {
      /* keep the old header */
    }
  };

  void (async () => {
    let item: WorklistItemDetail;
    try {
      item = await api.worklistItem(itemId);
    } catch (e) {
      clear(viewer, h('p', { class: 'error' },
        t('error', { detail: e instanceof api.ApiError ? e.detail : String(e) })));
      return;
    }
    if (closed) return;
    mark('item');
    clear(head, header(item));
    const show = { imaging: renderImageViewer, ecg: renderEcgViewer, lab: renderLabView }[item.kind];
    teardowns.push(show(viewer, item));
    teardowns.push(renderReportEditor(editor, item, {
      extraFields: item.kind === 'ecg' ? () => ecgFieldDefaults(confirmedMeasurements(viewer))
        : undefined,
      onChange: () => void refreshHead(),
    }));
  })();
  return () => {
    closed = true;
    teardowns.forEach((fn) => fn());
  };
}
