// A study's series and their image IDs, from QIDO/WADO-RS metadata through the hub's proxy.
import * as api from '../../api';
import type { DicomJson } from '../../api';
import { dicomImageLoader } from './cornerstone';

export interface SeriesInfo {
  uid: string;
  number: number;
  modality: string;
  description: string;
  instances: number;
}

export interface SeriesStack {
  imageIds: string[];
  /** SOP Instance UID of each image ID (same order), to name an image that fails. */
  sopOf: Map<string, string>;
  firstSop: string | null;
}

export function tagValue(ds: DicomJson, tag: string): unknown {
  return ds[tag]?.Value?.[0];
}

const str = (v: unknown): string => (v === undefined || v === null ? '' : String(v));

export async function listSeries(study: string): Promise<SeriesInfo[]> {
  const rows = await api.studySeries(study);
  return rows.map((s) => ({
    uid: str(tagValue(s, '0020000E')),
    number: Number(tagValue(s, '00200011') ?? 0),
    modality: str(tagValue(s, '00080060')),
    description: str(tagValue(s, '0008103E')),
    instances: Number(tagValue(s, '00201209') ?? 0),
  })).sort((a, b) => a.number - b.number);
}

function addImages(study: string, series: string, metadata: DicomJson[], into: SeriesStack): void {
  for (const m of metadata) {
    const sop = str(tagValue(m, '00080018'));
    if (!m['7FE00010'] && !m['00280010']) continue; // no pixels (SR, PDF, waveform)
    const frames = Math.max(1, Number(tagValue(m, '00280008') ?? 1));
    for (let f = 1; f <= frames; f++) {
      const id = api.frameImageId(study, series, sop, f);
      if (f === 1) dicomImageLoader.wadors.metaDataManager.add(id, m as never);
      into.imageIds.push(id);
      into.sopOf.set(id, sop);
    }
  }
  into.firstSop = into.imageIds.length ? into.sopOf.get(into.imageIds[0])! : null;
}

/** Image IDs of a series in instance order, one per frame for multi-frame objects (cine). */
export async function loadSeriesStack(study: string, series: string): Promise<SeriesStack> {
  const metadata = await api.seriesMetadata(study, series);
  metadata.sort((a, b) => Number(tagValue(a, '00200013') ?? 0) - Number(tagValue(b, '00200013') ?? 0));
  const stack: SeriesStack = { imageIds: [], sopOf: new Map(), firstSop: null };
  addImages(study, series, metadata, stack);
  return stack;
}

/** SOP Instance UID of instance number 1 per series, for showing a first image early. */
export async function firstInstanceBySeries(study: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  try {
    for (const x of await api.firstInstances(study)) {
      out.set(str(tagValue(x, '0020000E')), str(tagValue(x, '00080018')));
    }
  } catch {
    /* an optimisation only: the full series metadata follows anyway */
  }
  return out;
}

/** The image IDs of one instance (its frames), from that instance's metadata alone. */
export async function loadInstanceStack(study: string, series: string,
                                        sop: string): Promise<SeriesStack> {
  const stack: SeriesStack = { imageIds: [], sopOf: new Map(), firstSop: null };
  addImages(study, series, await api.instanceMetadata(study, series, sop), stack);
  return stack;
}
