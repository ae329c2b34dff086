// The one module that talks to the hub. Every screen calls these functions; the image loader gets
// its URLs and its Authorization header from here too. Nothing else calls fetch or XHR.

import { clearSession, loadSession, saveMe, saveSession, sessionCan, type Session } from '../session';
import type {
  Capability, DicomJson, EcgSamples, LabResultSet, Me, Order, OrderCreate, Patient, Report, ReportDraft,
  ReportTemplate, WorklistFilters, WorklistItem, WorklistItemDetail,
} from './types';

export * from './types';

/** The hub answered with an error status; `detail` is its reason. */
export class ApiError extends Error {
  constructor(public status: number, public detail: string) {
    super(`${status}: ${detail}`);
  }
}

/** The hub could not be reached (network down, hub stopped). */
export class OfflineError extends Error {}

type Listener<T> = (value: T) => void;
const onUnauthorized = new Set<Listener<void>>();
const onConnection = new Set<Listener<boolean>>();

let session: Session | null = loadSession();
/** Who was signed in when the session expired, to offer signing in again as them. */
let lastUsername: string | null = session?.username ?? null;
let online = true;
let healthTimer: number | undefined;

export const DICOMWEB_ROOT = '/api/dicom-web';
/** Lab results of one worklist item (issue 5's route; see docs/viewer.md for the expected shape). */
export const labResultsPath = (itemId: number): string => `/api/lab/${itemId}/results`;

export function currentSession(): Session | null {
  return session;
}

export function expiredUsername(): string | null {
  return lastUsername;
}

export function subscribeUnauthorized(fn: Listener<void>): () => void {
  onUnauthorized.add(fn);
  return () => onUnauthorized.delete(fn);
}

export function subscribeConnection(fn: Listener<boolean>): () => void {
  onConnection.add(fn);
  return () => onConnection.delete(fn);
}

export function isOnline(): boolean {
  return online;
}

function setOnline(value: boolean): void {
  if (value === online) return;
  online = value;
  onConnection.forEach((fn) => fn(value));
  if (!value && healthTimer === undefined) {
    // Probe until the hub answers again; then tell the screens so they can retry.
    healthTimer = window.setInterval(async () => {
      try {
        const r = await fetch('/api/health', { cache: 'no-store' });
        if (r.status < 500) {
          window.clearInterval(healthTimer);
          healthTimer = undefined;
          setOnline(true);
        }
      } catch {
        /* still down */
      }
    }, 3000);
  }
}

/** Headers for authenticated calls, also handed to the image loader's XHRs. */
export function authHeaders(): Record<string, string> {
  return session ? { Authorization: `Bearer ${session.token}` } : {};
}

/** The session ended (token expired or refused): forget it and tell the app to ask again. */
export function expireSession(): void {
  session = null;
  clearSession();
  onUnauthorized.forEach((fn) => fn());
}

async function request(method: string, path: string, body?: unknown,
                       accept = 'application/json'): Promise<Response> {
  const headers: Record<string, string> = { Accept: accept, ...authHeaders() };
  let payload: BodyInit | undefined;
  if (body instanceof URLSearchParams) {
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let r: Response;
  try {
    r = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
  } catch (e) {
    setOnline(false);
    throw new OfflineError(String(e));
  }
  if (r.status >= 502 && r.status <= 504) {
    setOnline(false);
    throw new OfflineError(`hub answered ${r.status}`);
  }
  setOnline(true);
  // A wrong password is a 401 too, but only the sign-in form should say so.
  if (r.status === 401 && path !== '/api/auth/token') {
    expireSession();
  }
  if (!r.ok) {
    let detail = r.statusText;
    try {
      const j = await r.json();
      detail = typeof j.detail === 'string' ? j.detail : validationText(j.detail);
    } catch {
      /* not JSON */
    }
    throw new ApiError(r.status, detail);
  }
  return r;
}

/** FastAPI's 422 list (`[{loc, msg}]`) as one readable line; anything else as JSON. */
function validationText(detail: unknown): string {
  if (Array.isArray(detail)) {
    return detail.map((d: { loc?: unknown[]; msg?: string }) =>
      `${(d.loc ?? []).filter((x) => x !== 'body').join('.')}: ${d.msg ?? ''}`).join('; ');
  }
  return JSON.stringify(detail);
}

async function json<T>(method: string, path: string, body?: unknown): Promise<T> {
  const r = await request(method, path, body);
  return (await r.json()) as T;
}

function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// --- auth -----------------------------------------------------------------------------------

export async function login(username: string, password: string): Promise<Session> {
  const form = new URLSearchParams({ username, password });
  const body = await json<{ access_token: string }>('POST', '/api/auth/token', form);
  session = saveSession(username, body.access_token);
  lastUsername = username;
  try {
    await refreshMe();
  } catch {
    /* signed in all the same; the app asks again before showing a screen */
  }
  return session;
}

/** Ask the hub who the session's user is and what their role allows; kept in the session. */
export async function refreshMe(): Promise<Me> {
  const token = session?.token;
  const me = await json<Me>('GET', '/api/auth/me');
  if (session && session.token === token) session = saveMe(session, me);
  return me;
}

/**
 * Whether the signed-in user's role may do `cap` (the hub's list from `GET /api/auth/me`). Only
 * for what the viewer offers: the hub checks every request itself and answers 403 regardless.
 */
export function can(cap: Capability): boolean {
  return sessionCan(session, cap);
}

/** End the session; `expired` keeps the username to offer signing in again. */
export function logout(expired = false): void {
  session = null;
  if (!expired) lastUsername = null;
  clearSession();
}

// --- capabilities ---------------------------------------------------------------------------

let openapiPaths: Promise<Set<string>> | null = null;

/** Whether the hub serves `method path` (parts land separately; absent ones are shown as such). */
export async function hasRoute(path: string, method = 'get'): Promise<boolean> {
  openapiPaths ??= fetch('/openapi.json', { cache: 'no-store' })
    .then((r) => r.json())
    .then((doc) => new Set(Object.entries(doc.paths as Record<string, Record<string, unknown>>)
      .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`))))
    .catch(() => new Set<string>());
  return (await openapiPaths).has(`${method} ${path}`);
}

// --- worklist and patients --------------------------------------------------------------------

export const worklist = (f: WorklistFilters = {}): Promise<WorklistItem[]> =>
  json('GET', `/api/worklist${query({ ...f, limit: 200 })}`);
export const worklistItem = (id: number): Promise<WorklistItemDetail> =>
  json('GET', `/api/worklist/${id}`);
export const claim = (id: number): Promise<WorklistItemDetail> =>
  json('POST', `/api/worklist/${id}/claim`);
export const release = (id: number): Promise<WorklistItemDetail> =>
  json('POST', `/api/worklist/${id}/release`);
export const patient = (id: number): Promise<Patient> => json('GET', `/api/patients/${id}`);

// --- orders (docs/orders.md) ----------------------------------------------------------------

/** Place an order for a branch without an HIS interface; the hub assigns the accession number. */
export const createOrder = (body: OrderCreate): Promise<Order> =>
  json('POST', '/api/orders', body);

// --- ECG ------------------------------------------------------------------------------------

export const ecgSamples = (id: number, seconds = 10, startS = 0): Promise<EcgSamples> =>
  json('GET', `/api/ecg/${id}/samples${query({ seconds, start_s: startS })}`);

// --- lab ------------------------------------------------------------------------------------

/** Result sets of a lab item; accepts a list or `{result_sets: [...]}`. */
export async function labResults(itemId: number): Promise<LabResultSet[]> {
  const body = await json<unknown>('GET', labResultsPath(itemId));
  if (Array.isArray(body)) return body as LabResultSet[];
  const b = body as { result_sets?: LabResultSet[]; observations?: LabResultSet['observations'] };
  if (b.result_sets) return b.result_sets;
  return [{ id: itemId, service_code: '', service_name: '', result_status: '', observed_at: null,
            is_critical: false, observations: b.observations ?? [] }];
}

// --- reports (docs/api-reports.md) ------------------------------------------------------------

export const reportTemplates = (kind?: string, modality?: string): Promise<ReportTemplate[]> =>
  json('GET', `/api/report-templates${query({ kind, modality })}`);

export async function report(itemId: number): Promise<Report | null> {
  try {
    return await json<Report>('GET', `/api/worklist/${itemId}/report`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

export const saveDraft = (itemId: number, d: ReportDraft): Promise<Report> =>
  json('PUT', `/api/worklist/${itemId}/report/draft`, d);
export const submitReport = (itemId: number): Promise<Report> =>
  json('POST', `/api/worklist/${itemId}/report/submit`);
export const preliminaryReport = (itemId: number): Promise<Report> =>
  json('POST', `/api/worklist/${itemId}/report/preliminary`);
export const verifyReport = (itemId: number, edits?: Partial<ReportDraft>): Promise<Report> =>
  json('POST', `/api/worklist/${itemId}/report/verify`, edits ?? {});
export const addendum = (itemId: number,
                         body: { text: string; reason: string; kind: string }): Promise<Report> =>
  json('POST', `/api/worklist/${itemId}/report/addendum`, body);
export const raiseCritical = (itemId: number, finding: string, notify: string): Promise<unknown> =>
  json('POST', `/api/worklist/${itemId}/report/critical`, { finding, notify });

/** A hub URL (e.g. a report's pdf_url) fetched with the session, as a Blob for inline display. */
export async function blob(url: string, accept = '*/*'): Promise<Blob> {
  if (!url.startsWith('/')) throw new Error('only hub-relative URLs are fetched');
  return (await request('GET', url, undefined, accept)).blob();
}

// --- DICOMweb, through the hub's proxy ----------------------------------------------------------

export const studySeries = (study: string): Promise<DicomJson[]> =>
  json('GET', `${DICOMWEB_ROOT}/studies/${study}/series`);
export const seriesMetadata = (study: string, series: string): Promise<DicomJson[]> =>
  json('GET', `${DICOMWEB_ROOT}/studies/${study}/series/${series}/metadata`);
export const instanceMetadata = (study: string, series: string, sop: string): Promise<DicomJson[]> =>
  json('GET', `${DICOMWEB_ROOT}/studies/${study}/series/${series}/instances/${sop}/metadata`);
/** QIDO: the instance numbered 1 of every series in a study (the archive's index answers fast). */
export const firstInstances = (study: string): Promise<DicomJson[]> =>
  json('GET', `${DICOMWEB_ROOT}/studies/${study}/instances?InstanceNumber=1&includefield=0020000E`);

/** The wadors: image ID of one frame, for the image loader. */
export function frameImageId(study: string, series: string, sop: string, frame: number): string {
  return `wadors:${location.origin}${DICOMWEB_ROOT}/studies/${study}/series/${series}` +
    `/instances/${sop}/frames/${frame}`;
}

export function renderedUrl(study: string, series: string, sop: string): string {
  return `${DICOMWEB_ROOT}/studies/${study}/series/${series}/instances/${sop}/rendered`;
}

// --- live refresh ---------------------------------------------------------------------------

/** Server-sent events for the worklist; returns a function that closes the stream. */
export function openEvents(onWorklist: () => void, onExpired: () => void): () => void {
  let source: EventSource | null = null;
  let closed = false;
  let retry: number | undefined;
  const connect = async () => {
    if (closed || !session) return;
    try {
      const { ticket } = await json<{ ticket: string }>('POST', '/api/events/ticket');
      if (closed) return;
      source = new EventSource(`/api/events${query({ ticket })}`);
      source.addEventListener('worklist', () => onWorklist());
      source.addEventListener('expired', () => {
        source?.close();
        onExpired();
      });
      source.onerror = () => {
        // A ticket is good for one minute: reconnect with a fresh one instead of the old URL.
        source?.close();
        if (!closed) retry = window.setTimeout(connect, 5000);
      };
    } catch {
      if (!closed) retry = window.setTimeout(connect, 5000);
    }
  };
  void connect();
  return () => {
    closed = true;
    window.clearTimeout(retry);
    source?.close();
  };
}
