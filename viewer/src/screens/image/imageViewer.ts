// Image viewer: series thumbnails, stack scroll, window/level with CT presets, zoom/pan, length
// and angle, cine for multi-frame; images that cannot be decoded are listed, the rest still work;
// the same patient's earlier studies (any institution) open side by side.
import * as api from '../../api';
import type { WorklistItemDetail } from '../../api';
import { formatDateTime, t } from '../../i18n';
import { mark, perf } from '../../perf';
import { clear, h } from '../../ui/dom';
import { core, initCornerstone, makeToolGroup, setPrimaryTool, tools } from './cornerstone';
import {
  firstInstanceBySeries, listSeries, loadInstanceStack, loadSeriesStack, type SeriesInfo,
  type SeriesStack,
} from './series';

/** Window presets as [width, level] in HU. */
export const CT_PRESETS: Record<string, [number, number]> = {
  brain: [80, 40],
  lung: [1500, -600],
  mediastinum: [350, 40],
  bone: [2000, 500],
  abdomen: [400, 50],
};

let engineCount = 0;

type StackViewport = core.Types.IStackViewport;

function describe(error: unknown): string {
  if (!error) return 'unknown error';
  if (error instanceof Error) return error.message;
  if (typeof error === 'object') {
    const e = error as { message?: string; error?: unknown; status?: number; xhr?: XMLHttpRequest };
    if (e.xhr) return `HTTP ${e.xhr.status}`;
    if (e.message) return e.message;
    if (e.error) return describe(e.error);
    if (e.status) return `HTTP ${e.status}`;
  }
  return String(error);
}

const SYNTAX_NAMES: Record<string, string> = {
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 (lossless)', '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.4.50': 'JPEG baseline', '1.2.840.10008.1.2.4.70': 'JPEG lossless',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS lossless', '1.2.840.10008.1.2.4.81': 'JPEG-LS',
  '1.2.840.10008.1.2.5': 'RLE', '1.2.840.10008.1.2.1': 'explicit VR little endian',
};

/** Why a decoded image is unusable (its size disagrees with its header), or null if it is fine. */
export function checkDecoded(image: core.Types.IImage): string | null {
  const pixel = core.metaData.get('imagePixelModule', image.imageId) as
    { rows?: number; columns?: number } | undefined;
  const syntax = (image as unknown as { transferSyntaxUID?: string }).transferSyntaxUID ?? '';
  const name = SYNTAX_NAMES[syntax] ?? syntax;
  if (!image.width || !image.height) {
    return `decoder returned an empty image (${name}; header says ` +
      `${pixel?.columns ?? '?'}×${pixel?.rows ?? '?'})`;
  }
  if (pixel?.rows && pixel?.columns && (pixel.rows !== image.height || pixel.columns !== image.width)) {
    return `decoded ${image.width}×${image.height}, header says ${pixel.columns}×${pixel.rows} (${name})`;
  }
  return null;
}

interface Pane {
  element: HTMLDivElement;
  viewportId: string;
  info: HTMLElement;
  stack: SeriesStack | null;
  seriesLabel: string;
}

export function renderImageViewer(root: HTMLElement, item: WorklistItemDetail): () => void {
  const engineId = `yg-engine-${++engineCount}`;
  const groupId = `yg-tools-${engineCount}`;
  const errorsList = h('ul', { 'data-testid': 'image-errors-list' });
  const errors = h('div', { class: 'image-errors', 'data-testid': 'image-errors', hidden: true },
    h('strong', {}, t('image.errors')), errorsList);
  const seriesBar = h('div', { class: 'series-bar', 'data-testid': 'series-list' });
  const priorsBar = h('div', { class: 'priors', 'data-testid': 'priors' });
  const makePane = (id: string): Pane => {
    const element = h('div', { class: 'viewport', 'data-testid': `viewport-${id}`,
                               oncontextmenu: (e: Event) => e.preventDefault() });
    const info = h('div', { class: 'viewport-info', 'data-testid': `viewport-info-${id}` });
    element.appendChild(info);
    return { element, viewportId: id, info, stack: null, seriesLabel: '' };
  };
  const main = makePane('main');
  const compare = makePane('compare');
  const grid = h('div', { class: 'viewports' }, main.element);
  const status = h('div', { class: 'muted', 'data-testid': 'image-status' }, t('image.loading'));
  let cineTimer: number | undefined;
  let engine: core.RenderingEngine | null = null;
  let group: tools.Types.IToolGroup | null = null;
  let closed = false;
  const failed = new Set<string>();

  const presetSelect = h('select', { 'data-testid': 'wl-preset' },
    h('option', { value: '' }, t('image.preset')),
    h('option', { value: 'default' }, t('preset.default')),
    Object.keys(CT_PRESETS).map((k) => h('option', { value: k }, t(`preset.${k}`))));
  const viewportOf = (p: Pane) => engine?.getViewport(p.viewportId) as StackViewport | undefined;

  presetSelect.addEventListener('change', () => {
    const vp = viewportOf(main);
    if (!vp) return;
    if (presetSelect.value === 'default') {
      vp.resetProperties();
    } else {
      const [w, l] = CT_PRESETS[presetSelect.value];
      vp.setProperties({ voiRange: { lower: l - w / 2, upper: l + w / 2 } });
    }
    vp.render();
  });

  const toolButton = (label: string, toolName: string) => h('button', {
    'data-testid': `tool-${toolName}`,
    onclick: (e: Event) => {
      if (!group) return;
      setPrimaryTool(group, toolName);
      root.querySelectorAll('.toolbar .active').forEach((b) => b.classList.remove('active'));
      (e.currentTarget as HTMLElement).classList.add('active');
    },
  }, label);

  const cineButton = h('button', { 'data-testid': 'cine', onclick: () => toggleCine() },
    t('image.cine'));
  const toolbar = h('div', { class: 'toolbar' },
    toolButton(t('image.wl'), tools.WindowLevelTool.toolName),
    toolButton(t('image.pan'), tools.PanTool.toolName),
    toolButton(t('image.zoom'), tools.ZoomTool.toolName),
    toolButton(t('image.length'), tools.LengthTool.toolName),
    toolButton(t('image.angle'), tools.AngleTool.toolName),
    presetSelect,
    h('button', { 'data-testid': 'reset', onclick: () => {
      const vp = viewportOf(main);
      vp?.resetCamera();
      vp?.resetProperties();
      vp?.render();
    } }, t('image.reset')),
    cineButton);

  clear(root, h('div', { class: 'image-viewer' }, toolbar,
    h('div', { class: 'image-body' },
      h('aside', { class: 'image-side' }, h('h4', {}, t('image.series')), seriesBar,
        h('h4', {}, t('image.priors')), priorsBar),
      h('div', { class: 'image-main' }, grid, status, errors))));

  const updateInfo = (p: Pane) => {
    const vp = viewportOf(p);
    if (!vp || !p.stack) return;
    const idx = vp.getCurrentImageIdIndex();
    const voi = vp.getProperties().voiRange;
    const wl = voi ? ` W ${Math.round(voi.upper - voi.lower)} L ${Math.round((voi.upper + voi.lower) / 2)}` : '';
    p.info.textContent = `${p.seriesLabel}  ${idx + 1}/${p.stack.imageIds.length}${wl}`;
    if (p === main) {
      perf().index = idx;
      perf().total = p.stack.imageIds.length;
    }
  };

  const listFailure = (imageId: string, reason: string) => {
    for (const p of [main, compare]) {
      const idx = p.stack?.imageIds.indexOf(imageId) ?? -1;
      if (idx < 0 || !p.stack) continue;
      failed.add(imageId);
      errors.hidden = false;
      errorsList.appendChild(h('li', { 'data-sop': p.stack.sopOf.get(imageId) ?? '' },
        t('image.error_item', { series: p.seriesLabel, n: idx + 1, reason })));
    }
  };
  const onFailed = (evt: Event) => {
    const { imageId, error } = (evt as CustomEvent).detail ?? {};
    if (imageId && !failed.has(imageId)) listFailure(imageId, describe(error));
  };
  // Some codecs "succeed" on a broken codestream and hand back an empty image: check the size
  // against the header so such an image is named too.
  const onLoaded = (evt: Event) => {
    const image = (evt as CustomEvent).detail?.image as core.Types.IImage | undefined;
    if (!image || failed.has(image.imageId)) return;
    const reason = checkDecoded(image);
    if (reason) listFailure(image.imageId, reason);
  };
  core.eventTarget.addEventListener(core.Enums.Events.IMAGE_LOAD_FAILED, onFailed);
  core.eventTarget.addEventListener(core.Enums.Events.IMAGE_LOADED, onLoaded);


  async function showSeries(p: Pane, study: string, s: SeriesInfo,
                            firstSop?: string, prefix = ''): Promise<void> {
    const vp = viewportOf(p);
    if (!vp) return;
    p.seriesLabel = `${prefix}${s.number} ${s.modality} ${s.description}`.trim();
    const full = loadSeriesStack(study, s.uid);
    if (firstSop) {
      // Show instance 1 from its own metadata while the whole series' metadata is read: a
      // 300-slice series takes the archive a few hundred ms to describe, one instance ~10 ms.
      try {
        const early = await loadInstanceStack(study, s.uid, firstSop);
        if (early.imageIds.length && !p.stack) {
          p.stack = early;
          await vp.setStack(early.imageIds, 0);
        }
      } catch {
        /* fall through to the full stack */
      }
    }
    const shown = p.stack?.imageIds[vp.getCurrentImageIdIndex?.() ?? 0];
    p.stack = await full;
    if (p === main) mark('metadata');
    if (!p.stack.imageIds.length) {
      status.textContent = t('image.nostudy');
      return;
    }
    try {
      await vp.setStack(p.stack.imageIds, Math.max(0, shown ? p.stack.imageIds.indexOf(shown) : 0));
    } catch {
      // The first image failed (it is listed); show the next one that loads.
      for (let i = 1; i < p.stack.imageIds.length; i++) {
        try {
          await vp.setImageIdIndex(i);
          break;
        } catch {
          /* listed by onFailed */
        }
      }
    }
    vp.render();
    tools.utilities.stackPrefetch.enable(p.element);
  }

  const onRendered = (p: Pane) => () => {
    if (p === main) {
      perf().rendered += 1;
      if (perf().marks['first-image'] === undefined && p.stack) {
        mark('first-image');
        status.textContent = '';
        void thumbnails();
      }
    }
    updateInfo(p);
  };
  main.element.addEventListener(core.Enums.Events.IMAGE_RENDERED, onRendered(main));
  compare.element.addEventListener(core.Enums.Events.IMAGE_RENDERED, onRendered(compare));

  function toggleCine(): void {
    if (cineTimer !== undefined) {
      window.clearInterval(cineTimer);
      cineTimer = undefined;
      cineButton.textContent = t('image.cine');
      return;
    }
    const vp = viewportOf(main);
    if (!vp || !main.stack) return;
    const n = main.stack.imageIds.length;
    cineButton.textContent = t('image.stop');
    cineTimer = window.setInterval(() => {
      void vp.setImageIdIndex((vp.getCurrentImageIdIndex() + 1) % n);
    }, 1000 / 15);
  }

  const onKey = (e: KeyboardEvent) => {
    const vp = viewportOf(main);
    if (!vp || !main.stack || (e.target as HTMLElement).closest('input,textarea,select')) return;
    const step = e.key === 'ArrowDown' || e.key === 'PageDown' ? 1
      : e.key === 'ArrowUp' || e.key === 'PageUp' ? -1 : 0;
    if (!step) return;
    e.preventDefault();
    const n = main.stack.imageIds.length;
    void vp.setImageIdIndex(Math.min(n - 1, Math.max(0, vp.getCurrentImageIdIndex() + step)));
  };
  document.addEventListener('keydown', onKey);

  let seriesInfos: SeriesInfo[] = [];
  async function thumbnails(): Promise<void> {
    for (const s of seriesInfos) {
      const canvas = seriesBar.querySelector<HTMLCanvasElement>(`canvas[data-series="${s.uid}"]`);
      if (!canvas || closed) continue;
      try {
        const stack = main.stack && s.uid === seriesInfos[0]?.uid
          ? main.stack : await loadSeriesStack(item.natural_key, s.uid);
        const id = stack.imageIds[Math.floor(stack.imageIds.length / 2)];
        if (id) await core.utilities.loadImageToCanvas({ canvas, imageId: id, thumbnail: true });
      } catch {
        /* a thumbnail is a nicety; the failure is listed when the image is opened */
      }
    }
  }

  async function openPrior(priorId: number, button: HTMLElement): Promise<void> {
    const prior = await api.worklistItem(priorId);
    if (!grid.contains(compare.element)) {
      grid.appendChild(compare.element);
      grid.classList.add('two');
      engine?.enableElement({ viewportId: compare.viewportId, element: compare.element,
                              type: core.Enums.ViewportType.STACK });
      group?.addViewport(compare.viewportId, engineId);
      engine?.resize(true, false);
    }
    const series = await listSeries(prior.natural_key);
    compare.stack = null;
    const when = prior.study_date ?? formatDateTime(prior.received_at);
    if (series[0]) {
      await showSeries(compare, prior.natural_key, series[0], undefined,
                       `${t('image.compare')} ${when} · `);
    }
    button.classList.add('active');
  }

  async function priors(): Promise<void> {
    if (!item.patient.id) {
      clear(priorsBar, h('span', { class: 'muted' }, t('image.no_priors')));
      return;
    }
    const p = await api.patient(item.patient.id);
    const earlier = p.history.filter((x) => x.kind === 'imaging' && x.id !== item.id);
    clear(priorsBar, earlier.length ? earlier.map((x) => {
      const b: HTMLButtonElement = h('button', { class: 'prior', 'data-testid': 'prior',
        onclick: () => void openPrior(x.id, b) },
      `${t('image.compare')}: ${x.study_date ?? formatDateTime(x.received_at)} ` +
        `${x.modality ?? ''} ${x.description ?? ''} (${x.institution.name ?? x.institution.code})`);
      return b;
    }) : h('span', { class: 'muted' }, t('image.no_priors')));
  }

  void (async () => {
    try {
      await initCornerstone();
      if (closed) return;
      engine = new core.RenderingEngine(engineId);
      engine.enableElement({ viewportId: main.viewportId, element: main.element,
                             type: core.Enums.ViewportType.STACK });
      group = makeToolGroup(groupId);
      group.addViewport(main.viewportId, engineId);
      mark('viewer-ready');
      const firsts = firstInstanceBySeries(item.natural_key);
      seriesInfos = await listSeries(item.natural_key);
      mark('series');
      clear(seriesBar, seriesInfos.map((s) => h('button', {
        class: 'series-tile', 'data-testid': 'series-tile', 'data-series': s.uid,
        onclick: () => { main.stack = null; void showSeries(main, item.natural_key, s); },
      }, h('canvas', { width: 96, height: 96, 'data-series': s.uid }),
      h('span', {}, `${s.number} ${s.modality} ${s.description}`),
      h('span', { class: 'muted' }, t('image.images', { n: s.instances })))));
      if (!seriesInfos.length) {
        status.textContent = t('image.nostudy');
        return;
      }
      await showSeries(main, item.natural_key, seriesInfos[0],
                       (await firsts).get(seriesInfos[0].uid));
      void priors();
    } catch (e) {
      status.textContent = t('error', { detail: e instanceof api.ApiError ? e.detail : String(e) });
    }
  })();

  const onResize = () => engine?.resize(true, true);
  window.addEventListener('resize', onResize);
  return () => {
    closed = true;
    window.clearInterval(cineTimer);
    document.removeEventListener('keydown', onKey);
    window.removeEventListener('resize', onResize);
    core.eventTarget.removeEventListener(core.Enums.Events.IMAGE_LOAD_FAILED, onFailed);
    core.eventTarget.removeEventListener(core.Enums.Events.IMAGE_LOADED, onLoaded);
    tools.ToolGroupManager.destroyToolGroup(groupId);
    engine?.destroy();
  };
}
