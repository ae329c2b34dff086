// Shapes of the hub's JSON, as the viewer reads them (see docs/viewer.md for the sources).

export interface Institution { code: string; name: string | null }
export interface PatientBrief { id: number | null; local_id: string | null; name: string }

export interface WorklistItem {
  id: number;
  kind: 'imaging' | 'ecg' | 'lab';
  status: string;
  priority: 'stat' | 'urgent' | 'routine';
  specialty: string;
  due_at: string;
  received_at: string;
  overdue: boolean;
  institution: Institution;
  patient: PatientBrief;
  accession_number: string | null;
  modality: string | null;
  body_part: string | null;
  description: string | null;
  study_date: string | null;
  series_count: number;
  instance_count: number;
  is_critical: boolean;
  critical_reason: string | null;
  flags: string[];
  claimed_by: number | null;
  claim_expires_at: string | null;
}

export interface WorklistItemDetail extends WorklistItem {
  natural_key: string;
  orthanc_id: string | null;
  details: Record<string, unknown>;
}

export interface WorklistFilters {
  kind?: string; status?: string; priority?: string; institution?: string;
  specialty?: string; date_from?: string; date_to?: string;
}

export interface Patient {
  id: number; name: string; birth_date: string | null; sex: string | null;
  history: WorklistItem[];
}

export interface EcgSamples {
  units: string;
  sampling_rate_hz: number;
  start_s: number;
  n_samples: number;
  total_samples: number;
  duration_s: number;
  derived_leads: string[];
  leads: Record<string, number[]>;
}

export interface LabObservation {
  id?: number;
  code: string;
  name: string;
  value: string;
  numeric_value: number | null;
  units: string;
  reference_range: string;
  abnormal_flags: string[];
  result_status: string;
  observed_at: string | null;
  is_critical: boolean;
}

export interface LabResultSet {
  id: number;
  service_code: string;
  service_name: string;
  result_status: string;
  observed_at: string | null;
  reported_at?: string | null;
  is_critical: boolean;
  verified_at?: string | null;
  verified_by?: string | null;
  notes?: string[];
  observations: LabObservation[];
}

export interface LabTrendPoint {
  observed_at: string | null;
  value: string;
  numeric_value: number | null;
  units: string;
  abnormal_flags: string[];
  institution?: string;
}

export interface TemplateField {
  key: string; label: string; type: 'text' | 'number' | 'enum' | 'bool';
  options?: string[]; required?: boolean; unit?: string | null;
}

export interface ReportTemplate {
  code: string; kind: string; modalities: string[]; body_parts?: string[]; name: string;
  findings_label: string; impression_label: string;
  default_findings: string; default_impression: string; fields: TemplateField[];
}

export interface ReportPerson { username: string; name: string }

export interface ReportVersion {
  number: number; kind: string; findings: string; impression: string; text: string | null;
  reason: string | null; author: string; created_at: string; signed_at: string | null;
  pdf_url: string | null;
}

export interface Report {
  id: number; item_id: number; status: string; template: string;
  findings: string; impression: string; fields: Record<string, unknown>;
  writer: ReportPerson | null; verifier: ReportPerson | null;
  exam_at: string | null; written_at: string | null; submitted_at: string | null;
  verified_at: string | null; recognised?: boolean; pdf_url: string | null;
  versions: ReportVersion[];
  signatures: { version: number; role: string; username: string; name: string; signed_at: string }[];
  delivery: { channel: string; status: string; detail?: string; at?: string }[];
  critical: { id: number | string; status: string; [k: string]: unknown }[];
}

export interface ReportDraft {
  template: string; findings: string; impression: string; fields: Record<string, unknown>;
}

/** DICOM JSON (PS3.18 F.2): tag -> {vr, Value}. */
export type DicomJson = Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string }>;

/** `POST /api/orders` body (docs/orders.md, "Orders over the API"); optional fields may be left out. */
export interface OrderCreate {
  patient: {
    local_id?: string | null; name: string; birth_date?: string | null; sex?: string | null;
  };
  modality: string;
  procedure_code?: string;
  procedure_name?: string;
  body_part?: string | null;
  scheduled_at?: string | null;
  priority: 'stat' | 'urgent' | 'routine';
  reason?: string;
}

/** The order as the hub answers it (`OrderOut`). */
export interface Order {
  id: number; kind: string; status: string; institution: string;
  placer_order_number: string; filler_order_number: string; accession_number: string;
  study_instance_uid: string; procedure_code: string; procedure_name: string;
  modality: string; body_part: string | null; scheduled_at: string | null;
  scheduled_station_aet: string; priority: string; ordering_clinician: string; reason: string;
  patient_id: number | null; patient_local_id: string | null; patient_name: string;
  worklist_item_id: number | null; created_at: string;
  history: Record<string, unknown>[];
}

/** What a role may do (`hub.domain.access.Capability`); the hub still checks every request. */
export type Capability =
  | 'order.write' | 'order.reconcile' | 'node.sync' | 'patient.link'
  | 'report.write' | 'report.verify' | 'report.critical' | 'admin';

/** The signed-in user (`GET /api/auth/me`). */
export interface Me {
  username: string;
  display_name: string | null;
  role: string;
  rank: string | null;
  institution_code: string;
  institution_name: string | null;
  is_lead: boolean;
  capabilities: Capability[];
}
