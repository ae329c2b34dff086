"""Report templates per exam type (报告模板), with structured fields and zh-CN labels.

Templates are data: the editor renders them, :func:`validate_fields` checks a draft's structured
fields against them (as highdicom checks at construction), and the PDF prints their labels.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from hub.domain.errors import InvalidInput


class FieldType(enum.StrEnum):
    TEXT = "text"
    NUMBER = "number"
    ENUM = "enum"
    BOOL = "bool"


@dataclass(frozen=True)
class TemplateField:
    """One structured field of a template."""

    key: str
    label: str
    type: FieldType
    required: bool = False
    options: tuple[str, ...] = ()
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class ReportTemplate:
    """An exam type's report: title, labels, default text and structured fields."""

    code: str
    kind: str                      # imaging / ecg / lab
    name: str                      # exam name printed on the report
    title: str                     # report title
    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    findings_label: str = "检查所见"
    impression_label: str = "诊断意见"
    default_findings: str = ""
    default_impression: str = ""
    fields: tuple[TemplateField, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        """JSON shape for the API (see docs/api-reports.md)."""
        d = asdict(self)
        d["modalities"], d["body_parts"] = list(self.modalities), list(self.body_parts)
        d["fields"] = [{**asdict(f), "options": list(f.options)} for f in self.fields]
        return d


_YN = ("无", "有")

TEMPLATES: dict[str, ReportTemplate] = {t.code: t for t in (
    ReportTemplate(
        code="dr_chest", kind="imaging", name="胸部X线摄影(DR)", title="医学影像诊断报告",
        modalities=("DX", "CR", "DR"), body_parts=("CHEST",),
        default_findings="胸廓对称，气管居中。双肺纹理清晰，未见明确实变影。双肺门不大。"
                         "心影大小形态未见异常。双膈面光整，肋膈角锐利。",
        default_impression="心肺膈未见明显异常。",
        fields=(
            TemplateField("lung_opacity", "肺内异常密度影", FieldType.ENUM, True, _YN),
            TemplateField("cardiothoracic_ratio", "心胸比", FieldType.NUMBER, False,
                          minimum=0.2, maximum=0.9),
            TemplateField("pleural_effusion", "胸腔积液", FieldType.ENUM, True, _YN),
            TemplateField("pneumothorax", "气胸", FieldType.ENUM, True, _YN),
        ),
    ),
    ReportTemplate(
        code="ct_head", kind="imaging", name="头颅CT平扫", title="医学影像诊断报告",
        modalities=("CT",), body_parts=("HEAD", "BRAIN", "SKULL"),
        default_findings="脑实质内未见异常密度影，灰白质分界清。脑室系统大小形态正常，"
                         "中线结构居中。颅骨骨质未见异常。",
        default_impression="颅脑CT平扫未见明显异常。",
        fields=(
            TemplateField("hemorrhage", "颅内出血", FieldType.ENUM, True, _YN),
            TemplateField("midline_shift_mm", "中线移位", FieldType.NUMBER, False, unit="mm",
                          minimum=0, maximum=50),
            TemplateField("infarct", "梗死灶", FieldType.ENUM, False, _YN),
        ),
    ),
    ReportTemplate(
        code="ct_chest", kind="imaging", name="胸部CT平扫", title="医学影像诊断报告",
        modalities=("CT",), body_parts=("CHEST", "LUNG", "THORAX"),
        default_findings="胸廓对称。双肺野清晰，未见明确结节及实变影。气管支气管通畅。"
                         "纵隔内未见肿大淋巴结。心脏大小正常。未见胸腔积液。",
        default_impression="胸部CT平扫未见明显异常。",
        fields=(
            TemplateField("nodule", "肺结节", FieldType.ENUM, True, _YN),
            TemplateField("largest_nodule_mm", "最大结节直径", FieldType.NUMBER, False,
                          unit="mm", minimum=0, maximum=300),
            TemplateField("pleural_effusion", "胸腔积液", FieldType.ENUM, False, _YN),
        ),
    ),
    ReportTemplate(
        code="us_abdomen", kind="imaging", name="腹部超声", title="超声诊断报告",
        modalities=("US",), body_parts=("ABDOMEN", "LIVER", "ABD"),
        findings_label="超声所见", impression_label="超声提示",
        default_findings="肝脏大小形态正常，包膜光整，实质回声均匀。胆囊大小正常，壁光滑，"
                         "腔内未见异常回声。胰腺、脾脏、双肾未见明显异常。",
        default_impression="肝胆胰脾肾未见明显异常。",
        fields=(
            TemplateField("liver_size", "肝脏大小", FieldType.ENUM, True,
                          ("正常", "增大", "缩小")),
            TemplateField("gallstone", "胆囊结石", FieldType.ENUM, True, _YN),
            TemplateField("ascites", "腹水", FieldType.ENUM, False, _YN),
        ),
    ),
    ReportTemplate(
        code="ecg_rest", kind="ecg", name="静息十二导联心电图", title="心电图诊断报告",
        modalities=("ECG",), findings_label="心电图所见", impression_label="心电图诊断",
        default_findings="窦性心律。",
        default_impression="正常心电图。",
        fields=(
            TemplateField("rhythm", "节律", FieldType.TEXT, True),
            TemplateField("heart_rate", "心率", FieldType.NUMBER, True, unit="次/分",
                          minimum=10, maximum=350),
            TemplateField("pr_ms", "PR间期", FieldType.NUMBER, False, unit="ms",
                          minimum=0, maximum=600),
            TemplateField("qrs_ms", "QRS时限", FieldType.NUMBER, False, unit="ms",
                          minimum=0, maximum=300),
            TemplateField("qtc_ms", "QTc", FieldType.NUMBER, False, unit="ms",
                          minimum=0, maximum=800),
            TemplateField("axis_deg", "电轴", FieldType.NUMBER, False, unit="°",
                          minimum=-180, maximum=360),
            TemplateField("st_change", "ST段改变", FieldType.ENUM, False, _YN),
        ),
    ),
    ReportTemplate(
        code="lab_review", kind="lab", name="检验结果审核", title="检验报告单",
        findings_label="检验结果说明", impression_label="审核意见",
        default_findings="",
        default_impression="结果已审核。",
        fields=(
            TemplateField("specimen_ok", "标本合格", FieldType.BOOL, True),
            TemplateField("critical_notified", "危急值已通知", FieldType.BOOL, False),
            TemplateField("recheck", "需复查", FieldType.BOOL, False),
        ),
    ),
)}


def get_template(code: str) -> ReportTemplate:
    """Return the template ``code``.

    Raises:
        InvalidInput: no such template.
    """
    try:
        return TEMPLATES[code]
    except KeyError:
        raise InvalidInput(f"unknown report template {code!r}") from None


def list_templates(kind: str | None = None, modality: str | None = None) -> list[ReportTemplate]:
    """Templates for an exam kind and modality (both optional filters)."""
    out = []
    for t in TEMPLATES.values():
        if kind and t.kind != kind:
            continue
        if modality and t.modalities and modality.upper() not in t.modalities:
            continue
        out.append(t)
    return out


def suggest_template(kind: str, modality: str | None, body_part: str | None) -> ReportTemplate:
    """The template that best fits an item (used when the editor opens a new report)."""
    candidates = list_templates(kind, modality) or list_templates(kind)
    bp = (body_part or "").upper()
    for t in candidates:
        if bp and bp in t.body_parts:
            return t
    return candidates[0] if candidates else TEMPLATES["dr_chest"]


def validate_fields(template: ReportTemplate, values: Mapping[str, Any],
                    *, require: bool) -> dict[str, Any]:
    """Check structured field values against the template; return them normalised.

    Args:
        template: the template the report uses.
        values: the editor's values, keyed by field key.
        require: also insist on required fields (at submit/verify, not while drafting).

    Raises:
        InvalidInput: unknown key, wrong type, value out of range or options, missing required.
    """
    known = {f.key: f for f in template.fields}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InvalidInput(f"unknown fields for template {template.code}: {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for key, f in known.items():
        v = values.get(key)
        if v is None or v == "":
            if require and f.required:
                raise InvalidInput(f"field {f.label} ({key}) is required")
            continue
        if f.type == FieldType.NUMBER:
            if isinstance(v, bool):
                raise InvalidInput(f"field {f.label} ({key}) must be a number")
            try:
                num = float(v)
            except (TypeError, ValueError):
                raise InvalidInput(f"field {f.label} ({key}) must be a number") from None
            if (f.minimum is not None and num < f.minimum) or \
                    (f.maximum is not None and num > f.maximum):
                raise InvalidInput(f"field {f.label} ({key}) = {num} is out of range")
            out[key] = int(num) if num.is_integer() else num
        elif f.type == FieldType.ENUM:
            if str(v) not in f.options:
                raise InvalidInput(f"field {f.label} ({key}) must be one of {'/'.join(f.options)}")
            out[key] = str(v)
        elif f.type == FieldType.BOOL:
            if not isinstance(v, bool):
                raise InvalidInput(f"field {f.label} ({key}) must be true or false")
            out[key] = v
        else:
            out[key] = str(v)[:2000]
    return out


def format_field(f: TemplateField, value: Any) -> str:
    """A field value as printed on the report."""
    if f.type == FieldType.BOOL:
        return "是" if value else "否"
    return f"{value} {f.unit}" if f.unit else str(value)
