// New order ("新建检查申请") for branches without an HIS interface: POST /api/orders (docs/orders.md).
// What is typed stays in memory only (never in the URL or any storage); the hub decides who may
// place orders (technicians, clinicians, admins) and answers anyone else with 403 and its reason.
import * as api from '../../api';
import type { Order, OrderCreate } from '../../api';
import { formatDateTime, t } from '../../i18n';
import { clear, h } from '../../ui/dom';

const MODALITIES = ['CT', 'DR', 'CR', 'DX', 'US', 'MR', 'MG', 'XA', 'NM', 'ECG'];
const PRIORITIES = ['routine', 'urgent', 'stat'] as const;
const SEXES = ['', 'M', 'F', 'O', 'U'];
const BODY_PARTS = ['HEAD', 'CHEST', 'ABDOMEN', 'SPINE', 'PELVIS', 'EXTREMITY', 'HEART'];

type Field = 'local_id' | 'name' | 'birth_date' | 'sex' | 'modality' | 'procedure_name' |
  'body_part' | 'priority' | 'reason' | 'scheduled_at';
const FIELDS: Field[] = ['local_id', 'name', 'birth_date', 'sex', 'modality', 'procedure_name',
                         'body_part', 'priority', 'reason', 'scheduled_at'];
const DEFAULTS: Partial<Record<Field, string>> = { modality: 'CT', priority: 'routine' };

/** The form being typed, kept across re-renders (language switch, re-login) for the same user. */
let draft: { user: string; values: Partial<Record<Field, string>> } | null = null;

/** `datetime-local` value (China Standard Time, as every time the viewer shows) → ISO 8601. */
export function scheduledIso(local: string): string | null {
  if (!local) return null;
  return `${local.length === 16 ? `${local}:00` : local}+08:00`;
}

function body(v: Partial<Record<Field, string>>): OrderCreate {
  const s = (f: Field) => (v[f] ?? '').trim();
  return {
    patient: { local_id: s('local_id') || null, name: s('name'),
               birth_date: s('birth_date') || null, sex: s('sex') || null },
    modality: s('modality'),
    procedure_name: s('procedure_name'),
    body_part: s('body_part') || null,
    priority: (s('priority') || 'routine') as OrderCreate['priority'],
    reason: s('reason'),
    scheduled_at: scheduledIso(s('scheduled_at')),
  };
}

export function renderOrderForm(root: HTMLElement): () => void {
  const user = api.currentSession()?.username ?? '';
  if (!draft || draft.user !== user) draft = { user, values: { ...DEFAULTS } };
  const values = draft.values;

  const control = (f: Field, el: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement) => {
    el.name = f;
    el.value = values[f] ?? '';
    el.setAttribute('data-testid', `order-${f}`);
    el.addEventListener('input', () => { values[f] = el.value; });
    el.addEventListener('change', () => { values[f] = el.value; });
    return el;
  };
  const field = (f: Field, el: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
                 wide = false) =>
    h('label', { class: wide ? 'wide' : '' }, t(`order.${f}`), control(f, el));
  const text = (extra: Record<string, string | number | boolean> = {}) =>
    h('input', { type: 'text', autocomplete: 'off', ...extra });
  const select = (options: readonly string[], label: (o: string) => string) =>
    h('select', {}, options.map((o) => h('option', { value: o }, label(o))));

  const error = h('p', { class: 'error order-error', role: 'alert', 'data-testid': 'order-error',
                         hidden: true });
  const result = h('div', { class: 'order-result', 'data-testid': 'order-result', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary', 'data-testid': 'order-submit' },
    t('order.submit'));

  const form = h('form', { class: 'order-form', novalidate: true, 'data-testid': 'order-form' },
    h('fieldset', {}, h('legend', {}, t('order.patient')),
      field('local_id', text({ maxlength: 64 })),
      field('name', text({ maxlength: 200, placeholder: t('order.name_hint') })),
      field('birth_date', h('input', { type: 'date' })),
      field('sex', select(SEXES, (o) => t(`sex.${o || 'none'}`)))),
    h('fieldset', {}, h('legend', {}, t('order.exam')),
      field('modality', select(MODALITIES, (o) => o)),
      field('procedure_name', text({ maxlength: 200, placeholder: t('order.procedure_hint') })),
      field('body_part', text({ maxlength: 64, list: 'order-body-parts',
                                placeholder: t('order.body_part_hint') })),
      h('datalist', { id: 'order-body-parts' },
        BODY_PARTS.map((b) => h('option', { value: b }))),
      field('priority', select(PRIORITIES, (o) => t(`priority.${o}`))),
      field('scheduled_at', h('input', { type: 'datetime-local' })),
      field('reason', h('textarea', { rows: 2, maxlength: 2000 }), true)),
    h('div', { class: 'order-actions' }, submit,
      h('a', { href: '#/', 'data-testid': 'order-back' }, t('back'))),
    error);

  const showError = (message: string) => {
    error.textContent = message;
    error.hidden = false;
  };

  const showResult = (o: Order) => {
    clear(result,
      h('p', {}, t('order.created')),
      h('p', { class: 'accession' }, t('order.accession'), ' ',
        h('strong', { 'data-testid': 'order-accession' }, o.accession_number)),
      h('p', { class: 'muted' }, [o.patient_name, o.patient_local_id, o.modality,
        o.procedure_name, t(`priority.${o.priority}`),
        o.scheduled_at ? formatDateTime(o.scheduled_at) : null].filter(Boolean).join(' · ')),
      h('button', { type: 'button', 'data-testid': 'order-another',
                    onclick: () => { result.hidden = true; } }, t('order.another')));
    result.hidden = false;
  };

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    result.hidden = true;
    submit.disabled = true;
    try {
      const order = await api.createOrder(body(values));
      // Placed: start the next order from an empty form; the summary says what was placed.
      for (const f of FIELDS) values[f] = DEFAULTS[f] ?? '';
      form.querySelectorAll<HTMLInputElement>('[name]').forEach((el) => {
        el.value = values[el.name as Field] ?? '';
      });
      showResult(order);
    } catch (e) {
      // Everything typed stays in the form, to be corrected and sent again.
      if (e instanceof api.ApiError) {
        showError(t('order.refused', { status: e.status, detail: e.detail }));
      } else if (e instanceof api.OfflineError) {
        showError(t('order.offline'));
      } else {
        showError(t('error', { detail: String(e) }));
      }
    } finally {
      submit.disabled = false;
    }
  });

  clear(root,
    h('div', { class: 'worklist-head' }, h('h2', {}, t('order.title')),
      h('span', { class: 'muted' }, t('order.intro'))),
    result, form);
  return () => { /* the draft stays in memory for this user; nothing to close */ };
}
