// Report editor (docs/api-reports.md): template by exam type, findings/impression and structured
// fields, save draft, submit for verification, preliminary, verify and sign, addendum/amendment,
// critical-result call; the signed PDF inline. The draft is kept in memory and in this tab's
// sessionStorage on every keystroke, so a lost connection or an expired session loses nothing.
import * as api from '../../api';
import type { Report, ReportDraft, ReportTemplate, WorklistItemDetail } from '../../api';
import { formatDateTime, t } from '../../i18n';
import { clear, h, toast } from '../../ui/dom';

const draftKey = (itemId: number) => `yg.draft.${itemId}`;

export function keepDraft(itemId: number, d: ReportDraft): void {
  sessionStorage.setItem(draftKey(itemId), JSON.stringify(d));
}

export function keptDraft(itemId: number): ReportDraft | null {
  try {
    return JSON.parse(sessionStorage.getItem(draftKey(itemId)) ?? 'null') as ReportDraft | null;
  } catch {
    return null;
  }
}

export function dropDraft(itemId: number): void {
  sessionStorage.removeItem(draftKey(itemId));
}

/** The template for this exam: same body part first, then the first for its kind/modality. */
export function bestTemplate(templates: ReportTemplate[],
                             item: WorklistItemDetail): ReportTemplate | undefined {
  const part = (item.body_part ?? '').toUpperCase();
  return templates.find((x) => x.body_parts?.includes(part)) ?? templates[0];
}

export interface EditorHooks {
  /** Defaults for template fields from the viewer pane (e.g. confirmed ECG measurements). */
  extraFields?: () => Record<string, unknown>;
  /** Called after a change of report state, e.g. to refresh the item header. */
  onChange?: () => void;
}

function describe(e: unknown): string {
  if (e instanceof api.ApiError) return `${e.status} ${e.detail}`;
  if (e instanceof api.OfflineError) return t('offline');
  return String(e);
}

export function renderReportEditor(root: HTMLElement, item: WorklistItemDetail,
                                   hooks: EditorHooks = {}): () => void {
  let templates: ReportTemplate[] = [];
  let report: Report | null = null;
  let dirty = false;
  const templateSelect = h('select', { 'data-testid': 'report-template' });
  const findings = h('textarea', { rows: 8, 'data-testid': 'report-findings' });
  const impression = h('textarea', { rows: 4, 'data-testid': 'report-impression' });
  const fieldsBox = h('div', { class: 'report-fields', 'data-testid': 'report-fields' });
  const statusLine = h('div', { class: 'report-status', 'data-testid': 'report-status' });
  const note = h('div', { class: 'muted', 'data-testid': 'report-note' });
  const signatures = h('ul', { class: 'signatures', 'data-testid': 'report-signatures' });
  const pdfBox = h('div', { class: 'pdf', 'data-testid': 'report-pdf' });
  const actions = h('div', { class: 'report-actions' });
  const after = h('div', { class: 'report-after' });
  let pdfUrl: string | null = null;

  const current = (): ReportDraft => {
    const fields: Record<string, unknown> = {};
    fieldsBox.querySelectorAll<HTMLInputElement | HTMLSelectElement>('[data-field]').forEach((el) => {
      const key = el.dataset.field!;
      if (el instanceof HTMLInputElement && el.type === 'checkbox') fields[key] = el.checked;
      else if (el instanceof HTMLInputElement && el.type === 'number') {
        if (el.value !== '') fields[key] = Number(el.value);
      } else if (el.value !== '') fields[key] = el.value;
    });
    const extra = hooks.extraFields?.() ?? {};
    for (const f of templates.find((x) => x.code === templateSelect.value)?.fields ?? []) {
      if (fields[f.key] === undefined && extra[f.key] !== undefined) fields[f.key] = extra[f.key];
    }
    return { template: templateSelect.value, findings: findings.value,
             impression: impression.value, fields };
  };

  const keep = () => {
    dirty = true;
    keepDraft(item.id, current());
    note.textContent = t('report.kept');
  };

  const renderFields = (tpl: ReportTemplate | undefined, given: Record<string, unknown>) => {
    const values = { ...(hooks.extraFields?.() ?? {}), ...given };
    clear(fieldsBox, (tpl?.fields ?? []).map((f) => {
      let control: HTMLInputElement | HTMLSelectElement;
      if (f.type === 'enum') {
        control = h('select', {}, h('option', { value: '' }, ''),
          (f.options ?? []).map((o) => h('option', { value: o }, o)));
        control.value = String(values[f.key] ?? '');
      } else if (f.type === 'bool') {
        control = h('input', { type: 'checkbox' });
        (control as HTMLInputElement).checked = Boolean(values[f.key]);
      } else {
        control = h('input', { type: f.type === 'number' ? 'number' : 'text', step: 'any',
                               value: values[f.key] === undefined ? '' : String(values[f.key]) });
      }
      control.dataset.field = f.key;
      control.disabled = !(api.can('report.write') || api.can('report.verify'));
      control.setAttribute('data-testid', `field-${f.key}`);
      control.addEventListener('input', keep);
      control.addEventListener('change', keep);
      return h('label', {}, `${f.label}${f.required ? ' *' : ''}`, control, f.unit ?? '');
    }));
  };

  const applyTemplate = (code: string, fill: boolean) => {
    const tpl = templates.find((x) => x.code === code);
    if (fill && tpl) {
      findings.value = tpl.default_findings;
      impression.value = tpl.default_impression;
    }
    renderFields(tpl, report?.fields ?? {});
  };

  async function showPdf(url: string | null): Promise<void> {
    if (pdfUrl) URL.revokeObjectURL(pdfUrl);
    pdfUrl = null;
    if (!url) {
      clear(pdfBox);
      return;
    }
    try {
      pdfUrl = URL.createObjectURL(await api.blob(url, 'application/pdf'));
      clear(pdfBox, h('h4', {}, t('report.pdf')),
        h('object', { data: pdfUrl, type: 'application/pdf', class: 'pdf-frame' },
          h('a', { href: pdfUrl, download: `report-${item.id}.pdf` }, t('report.pdf'))));
    } catch (e) {
      clear(pdfBox, h('p', { class: 'error' }, describe(e)));
    }
  }

  const run = (fn: () => Promise<Report | unknown>, okMessage?: string) => async () => {
    actions.querySelectorAll('button').forEach((b) => { (b as HTMLButtonElement).disabled = true; });
    try {
      const r = await fn();
      if (r && typeof r === 'object' && 'status' in r && 'item_id' in r) show(r as Report);
      if (okMessage) toast(okMessage);
      hooks.onChange?.();
    } catch (e) {
      toast(t('error', { detail: describe(e) }), 'error');
      note.textContent = t('report.kept');
    } finally {
      actions.querySelectorAll('button').forEach((b) => { (b as HTMLButtonElement).disabled = false; });
    }
  };

  const save = async () => {
    const r = await api.saveDraft(item.id, current());
    dirty = false;
    dropDraft(item.id);
    note.textContent = t('report.saved');
    return r;
  };

  function show(r: Report): void {
    report = r;
    const status = r.status;
    statusLine.textContent = t('report.status', { status: t(`rstatus.${status}`) });
    statusLine.dataset.status = status;
    const writerSigned = r.signatures.some((s) => s.role === 'writer');
    clear(signatures, r.writer && !writerSigned ? h('li', {}, t('report.signed_by', { role: t('report.writer'),
      name: r.writer.name || r.writer.username, at: formatDateTime(r.written_at) })) : null,
    r.signatures.map((s) => h('li', {}, t('report.signed_by',
      { role: t(`report.${s.role}`), name: s.name || s.username, at: formatDateTime(s.signed_at) }))),
    r.delivery.map((d) => h('li', { class: 'muted' }, `${t('report.delivery')} ${d.channel}: ${d.status}`)),
    (r.critical ?? []).map((c) => h('li', { class: 'critical-status', 'data-testid': 'critical-status' },
      `${t('report.critical')}: ${String(c.what ?? c.finding ?? '')} — ${t(`alert.${c.status}`)}` +
      (c.acknowledged_by ? ` (${String(c.acknowledged_by)})` : ''))));
    renderActions();
    void showPdf(r.status === 'final' || r.status === 'preliminary' || r.status === 'amended'
      ? r.pdf_url : null);
  }

  function renderActions(): void {
    const status = report?.status ?? 'none';
    const final = status === 'final' || status === 'amended';
    // Offer only what the user's role may do (GET /api/auth/me); the hub still decides per
    // exam (specialty, writer, rank, certificate) and its refusal is shown as usual.
    const mayWrite = api.can('report.write');
    const mayVerify = api.can('report.verify');
    findings.readOnly = impression.readOnly = final || !(mayWrite || mayVerify);
    templateSelect.disabled = final || !mayWrite;
    const btn = (key: string, testid: string, fn: () => Promise<unknown>, cls = '') =>
      h('button', { class: cls, 'data-testid': testid, onclick: run(fn) }, t(key));
    clear(actions,
      !final && mayWrite ? btn('report.save', 'report-save', save) : null,
      !final && mayWrite ? btn('report.submit', 'report-submit', async () => {
        await save();
        return api.submitReport(item.id);
      }) : null,
      !final && mayWrite && item.priority !== 'routine' ? btn('report.preliminary',
        'report-preliminary', async () => { await save(); return api.preliminaryReport(item.id); })
        : null,
      !final && mayVerify ? btn('report.verify', 'report-verify', () => {
        const d = current();
        dropDraft(item.id);
        return api.verifyReport(item.id, { findings: d.findings, impression: d.impression,
                                           fields: d.fields });
      }, 'primary') : null,
      !mayWrite && !mayVerify ? h('p', { class: 'muted', 'data-testid': 'report-read-only' },
        t('report.read_only')) : null);
    clear(after);
    if (final && mayVerify) after.appendChild(addendumForm());
    if (api.can('report.critical')) after.appendChild(criticalForm());
  }

  function addendumForm(): HTMLElement {
    const text = h('textarea', { rows: 3, 'data-testid': 'addendum-text' });
    const reason = h('input', { 'data-testid': 'addendum-reason' });
    const amend = h('input', { type: 'checkbox', 'data-testid': 'addendum-amend' });
    return h('details', { class: 'addendum' }, h('summary', {}, t('report.addendum')),
      h('label', {}, t('report.addendum_text'), text),
      h('label', {}, t('report.addendum_reason'), reason),
      h('label', {}, amend, t('report.amendment')),
      h('button', { 'data-testid': 'addendum-submit', onclick: run(() => api.addendum(item.id, {
        text: text.value, reason: reason.value, kind: amend.checked ? 'amendment' : 'addendum',
      })) }, t('report.addendum')));
  }

  function criticalForm(): HTMLElement {
    const finding = h('input', { 'data-testid': 'critical-finding', value: item.critical_reason ?? '' });
    const notify = h('input', { 'data-testid': 'critical-notify' });
    return h('details', { class: 'critical-call' }, h('summary', {}, t('report.critical')),
      h('label', {}, t('report.critical_finding'), finding),
      h('label', {}, t('report.critical_notify'), notify),
      h('button', { 'data-testid': 'critical-submit',
        onclick: run(async () => {
          await api.raiseCritical(item.id, finding.value, notify.value);
          return api.report(item.id);
        }, t('report.critical')) },
      t('report.critical')));
  }

  clear(root, h('div', { class: 'report-editor', 'data-testid': 'report-editor' },
    h('h3', {}, t('report.title')), statusLine,
    h('label', {}, t('report.template'), templateSelect),
    h('label', {}, t('report.findings'), findings),
    h('label', {}, t('report.impression'), impression),
    fieldsBox, actions, note, signatures, after, pdfBox));
  findings.addEventListener('input', keep);
  impression.addEventListener('input', keep);
  templateSelect.addEventListener('change', () => { applyTemplate(templateSelect.value, !findings.value); keep(); });

  void (async () => {
    if (!(await api.hasRoute('/api/worklist/{item_id}/report'))) {
      const kept = keptDraft(item.id);
      if (kept) {
        findings.value = kept.findings;
        impression.value = kept.impression;
        note.textContent = t('report.restored');
      }
      clear(actions, h('p', { class: 'muted', 'data-testid': 'report-unavailable' },
        t('report.unavailable')));
      return;
    }
    try {
      [templates, report] = await Promise.all([
        api.reportTemplates(item.kind, item.kind === 'imaging' ? item.modality ?? undefined : undefined)
          .catch(() => api.reportTemplates(item.kind)),
        api.report(item.id),
      ]);
      if (!templates.length) templates = await api.reportTemplates(item.kind);
      clear(templateSelect, templates.map((tpl) => h('option', { value: tpl.code }, tpl.name)));
      templateSelect.value = bestTemplate(templates, item)?.code ?? '';
      const kept = keptDraft(item.id);
      if (report) {
        templateSelect.value = report.template;
        findings.value = report.findings;
        impression.value = report.impression;
      }
      if (kept && !(report && (report.status === 'final' || report.status === 'amended'))) {
        templateSelect.value = kept.template || templateSelect.value;
        findings.value = kept.findings;
        impression.value = kept.impression;
        note.textContent = t('report.restored');
        dirty = true;
      }
      // Template text is a start for the writer; to anyone else it would read as a report.
      applyTemplate(templateSelect.value, !report && !kept && api.can('report.write'));
      if (kept) renderFields(templates.find((x) => x.code === templateSelect.value), kept.fields);
      if (report) show(report);
      else {
        statusLine.textContent = t('report.status', { status: t('rstatus.none') });
        statusLine.dataset.status = 'none';
        renderActions();
      }
    } catch (e) {
      clear(actions, h('p', { class: 'error' }, describe(e)));
    }
  })();

  const beforeUnload = (e: BeforeUnloadEvent) => { if (dirty) e.preventDefault(); };
  window.addEventListener('beforeunload', beforeUnload);
  return () => {
    window.removeEventListener('beforeunload', beforeUnload);
    if (pdfUrl) URL.revokeObjectURL(pdfUrl);
  };
}
