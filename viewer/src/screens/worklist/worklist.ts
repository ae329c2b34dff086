// Worklist: filters, overdue and critical first, due-time countdown, claim/release, live refresh.
import * as api from '../../api';
import type { WorklistFilters, WorklistItem } from '../../api';
import { countdown, formatDateTime, t } from '../../i18n';
import { mark } from '../../perf';
import { clear, h, toast } from '../../ui/dom';

const filters: WorklistFilters = {}; // kept for the tab's life, never in the URL
/** Reported items: their due time no longer counts down. */
export const DONE = new Set(['final', 'delivered', 'amended']);

const CHOICES: Record<string, string[]> = {
  kind: ['imaging', 'ecg', 'lab'],
  specialty: ['radiology', 'cardiology', 'laboratory'],
  status: ['receiving', 'ready', 'in_progress', 'preliminary', 'final', 'delivered', 'amended'],
  priority: ['stat', 'urgent', 'routine'],
};
const LABEL_PREFIX: Record<string, string> = {
  kind: 'kind.', specialty: 'specialty.', status: 'status.', priority: 'priority.',
};

/** Overdue first, then critical, then the hub's order (priority, due time). */
export function sortItems(items: WorklistItem[]): WorklistItem[] {
  return items.map((it, i) => ({ it, i }))
    .sort((a, b) => Number(b.it.overdue) - Number(a.it.overdue)
      || Number(b.it.is_critical) - Number(a.it.is_critical) || a.i - b.i)
    .map(({ it }) => it);
}

function filterBar(onChange: () => void): HTMLElement {
  const field = (key: keyof WorklistFilters, control: HTMLInputElement | HTMLSelectElement) => {
    control.value = filters[key] ?? '';
    control.addEventListener('change', () => {
      filters[key] = control.value || undefined;
      onChange();
    });
    control.setAttribute('data-testid', `filter-${key}`);
    return h('label', {}, t(`filter.${key}`), control);
  };
  const select = (key: string) => h('select', {},
    h('option', { value: '' }, t('filter.any')),
    CHOICES[key].map((v) => h('option', { value: v }, t(LABEL_PREFIX[key] + v))));
  return h('div', { class: 'filters' },
    field('kind', select('kind')), field('specialty', select('specialty')),
    field('status', select('status')), field('priority', select('priority')),
    field('institution', h('input', { size: 6, placeholder: 'BR01' })),
    field('date_from', h('input', { type: 'date' })), field('date_to', h('input', { type: 'date' })));
}

function examText(it: WorklistItem): string {
  return [it.modality, it.body_part, it.description].filter(Boolean).join(' · ');
}

export function renderWorklist(root: HTMLElement): () => void {
  const body = h('tbody', { 'data-testid': 'worklist-body' });
  const status = h('span', { class: 'muted', 'data-testid': 'worklist-status' });
  let items: WorklistItem[] = [];

  const countdowns = () => {
    body.querySelectorAll<HTMLElement>('[data-due]').forEach((el) => {
      el.textContent = countdown(el.dataset.due!);
    });
  };

  const act = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
      await load();
    } catch (e) {
      toast(t('error', { detail: e instanceof api.ApiError ? e.detail : String(e) }), 'error');
    }
  };

  const row = (it: WorklistItem) => {
    const open = () => { mark('click'); location.hash = `#/item/${it.id}`; };
    const mine = it.claimed_by !== null;
    return h('tr', {
      class: [it.overdue ? 'overdue' : '', it.is_critical ? 'critical' : ''].join(' '),
      'data-testid': 'worklist-row', 'data-item-id': it.id, 'data-kind': it.kind,
      'data-status': it.status, ondblclick: open,
    },
    h('td', {}, h('span', { class: `prio prio-${it.priority}` }, t(`priority.${it.priority}`)),
      it.is_critical ? h('span', { class: 'badge critical', title: it.critical_reason ?? '' },
        t('critical')) : null),
    DONE.has(it.status) ? h('td', { class: 'due muted' }, '—')
      : h('td', { class: it.overdue ? 'due late' : 'due', 'data-due': it.due_at },
        countdown(it.due_at)),
    h('td', { class: 'patient' }, it.patient.name),
    h('td', {}, t(`kind.${it.kind}`)),
    h('td', {}, examText(it), it.is_critical && it.critical_reason
      ? h('div', { class: 'critical-reason' }, it.critical_reason) : null),
    h('td', {}, it.institution.name ?? it.institution.code),
    h('td', { 'data-testid': 'row-status' }, t(`status.${it.status}`),
      it.overdue ? h('span', { class: 'badge late' }, t('overdue')) : null),
    h('td', {}, formatDateTime(it.received_at)),
    h('td', { class: 'actions' },
      h('button', { class: 'primary', 'data-testid': 'open-item', onclick: open }, t('open')),
      it.status === 'ready' ? h('button', { 'data-testid': 'claim',
        onclick: () => act(() => api.claim(it.id)) }, t('claim')) : null,
      it.status === 'in_progress' && mine ? h('button', { 'data-testid': 'release',
        onclick: () => act(() => api.release(it.id)) }, t('release')) : null));
  };

  async function load(): Promise<void> {
    try {
      items = sortItems(await api.worklist(filters));
      clear(body, items.length ? items.map(row)
        : h('tr', {}, h('td', { colspan: 9, class: 'muted' }, t('worklist.empty'))));
      status.textContent = `${items.length} · ${formatDateTime(new Date().toISOString())}`;
    } catch (e) {
      if (!(e instanceof api.OfflineError)) toast(t('error', { detail: String(e) }), 'error');
    }
  }

  const cols = ['priority', 'due', 'patient', 'kind', 'exam', 'institution', 'status', 'received',
                'actions'];
  clear(root,
    h('div', { class: 'worklist-head' },
      h('h2', {}, t('worklist.title')),
      h('button', { onclick: () => load(), 'data-testid': 'refresh' }, t('worklist.refresh')),
      h('span', { class: 'live', 'data-testid': 'live' }, '● ', t('worklist.live')), status,
      h('span', { class: 'spacer' }),
      // Only roles that may place orders are offered the form (the hub answers others 403).
      api.can('order.write') ? h('a', { class: 'button', href: '#/orders/new',
                                        'data-testid': 'new-order' }, t('order.new')) : null),
    filterBar(() => load()),
    h('table', { class: 'worklist' },
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, t(`col.${c}`))))), body));

  const tick = window.setInterval(countdowns, 1000);
  const closeEvents = api.openEvents(() => { void load(); }, () => api.expireSession());
  const unsub = api.subscribeConnection((online) => { if (online) void load(); });
  void load();
  return () => {
    window.clearInterval(tick);
    closeEvents();
    unsub();
  };
}
