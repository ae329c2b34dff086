"""Render a report to PDF (A4, Chinese text) with reportlab.

The font is a TrueType CJK font from a Debian package (``fonts-wqy-microhei``; reportlab cannot
embed the CFF outlines of Noto CJK), embedded as a subset so any viewer shows the same glyphs.
The page carries patient, institutions, exam, structured fields, findings, impression, key images
or the ECG page, addenda, signer names and times, the recognition mark 互认, and a QR code with
the verification address. A preliminary report is watermarked "急诊报告，以正式报告为准".
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from io import BytesIO
from zoneinfo import ZoneInfo

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

logger = logging.getLogger(__name__)

PRELIMINARY_WATERMARK = "急诊报告，以正式报告为准"
DISPLAY_TZ = ZoneInfo("Asia/Shanghai")
FONT_NAME = "YigongCJK"

#: Where Debian packages put TrueType CJK fonts; the first one found is used.
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)


class FontMissing(RuntimeError):
    """No CJK TrueType font: install ``fonts-wqy-microhei`` (scripts/install.sh does)."""


@lru_cache(maxsize=1)
def register_font(path: str | None = None) -> str:
    """Register the CJK font once per process; returns the font name.

    Raises:
        FontMissing: none of the candidates (or ``YIGONG_REPORT_FONT``) exists.
    """
    candidates = [p for p in (path, os.environ.get("YIGONG_REPORT_FONT")) if p]
    candidates += list(FONT_CANDIDATES)
    for p in candidates:
        if os.path.exists(p):
            pdfmetrics.registerFont(TTFont(FONT_NAME, p, subfontIndex=0))
            return FONT_NAME
    raise FontMissing("no CJK TrueType font found; install fonts-wqy-microhei")


@dataclass(frozen=True)
class KeyImage:
    """A key image or ECG page (PNG/JPEG bytes) with its caption."""

    data: bytes
    caption: str = ""


@dataclass(frozen=True)
class SignerLine:
    """A signer as printed: role label (书写医师/审核医师), name, time."""

    role: str
    name: str
    at: datetime | None


@dataclass(frozen=True)
class AddendumBlock:
    """An addendum or amendment printed below the original text."""

    title: str
    text: str
    reason: str
    author: str
    at: datetime


@dataclass(frozen=True)
class ReportDocument:
    """Everything printed on a report page; built by the service from the database."""

    report_id: int
    version: int
    title: str
    reporting_institution: str
    source_institution: str
    patient_name: str
    patient_sex: str
    patient_age: str
    patient_local_id: str
    exam_name: str
    modality: str
    accession: str
    exam_at: datetime | None
    findings_label: str
    findings: str
    impression_label: str
    impression: str
    verify_url: str
    verify_code: str
    fields: tuple[tuple[str, str], ...] = ()
    images: tuple[KeyImage, ...] = ()
    signers: tuple[SignerLine, ...] = ()
    addenda: tuple[AddendumBlock, ...] = ()
    recognition: str | None = None     # e.g. "医共体HR · CT-HEAD"; None = no mark
    preliminary: bool = False
    critical_note: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def local_time(t: datetime | None) -> str:
    """Display time in Asia/Shanghai, to the minute."""
    if t is None:
        return ""
    return t.astimezone(DISPLAY_TZ).strftime("%Y-%m-%d %H:%M")


def _styles(font: str) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=font, fontSize=10.5, leading=15, wordWrap="CJK")
    return {
        "base": base,
        "title": ParagraphStyle("title", parent=base, fontSize=17, leading=22,
                                alignment=TA_CENTER),
        "subtitle": ParagraphStyle("subtitle", parent=base, fontSize=12, leading=16,
                                   alignment=TA_CENTER),
        "h": ParagraphStyle("h", parent=base, fontSize=11.5, leading=17, spaceBefore=6,
                            textColor=colors.HexColor("#1f3b63")),
        "small": ParagraphStyle("small", parent=base, fontSize=8.5, leading=11,
                                textColor=colors.HexColor("#555555")),
        "cell": ParagraphStyle("cell", parent=base, fontSize=9.5, leading=13),
    }


def _esc(text: str) -> str:
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") \
        .replace("\n", "<br/>")


def _decorate(doc: ReportDocument, font: str):  # noqa: ANN202 - reportlab callback
    def draw(canvas: Canvas, _doc: SimpleDocTemplate) -> None:
        w, h = A4
        canvas.saveState()
        if doc.preliminary:
            # Diagonal watermark on every page plus a banner: a preliminary must never be read
            # as final (the regulation wants the label until the verified report replaces it).
            canvas.setFillColor(colors.Color(0.85, 0.1, 0.1, alpha=0.18))
            canvas.setFont(font, 40)
            canvas.translate(w / 2, h / 2)
            canvas.rotate(35)
            canvas.drawCentredString(0, 0, PRELIMINARY_WATERMARK)
            canvas.rotate(-35)
            canvas.translate(-w / 2, -h / 2)
            canvas.setFillColor(colors.HexColor("#c62828"))
            canvas.setFont(font, 11)
            canvas.drawCentredString(w / 2, h - 12 * mm, PRELIMINARY_WATERMARK)
        if doc.recognition:
            # Recognition stamp (互认章), top right.
            cx, cy, r = w - 26 * mm, h - 21 * mm, 11 * mm
            canvas.setStrokeColor(colors.HexColor("#c62828"))
            canvas.setFillColor(colors.HexColor("#c62828"))
            canvas.setLineWidth(1.6)
            canvas.circle(cx, cy, r, stroke=1, fill=0)
            canvas.setFont(font, 15)
            canvas.drawCentredString(cx, cy - 1.5 * mm, "互认")
            canvas.setFont(font, 6)
            canvas.drawCentredString(cx, cy + 5 * mm, doc.recognition.split("·")[0].strip())
            canvas.drawCentredString(cx, cy - 7 * mm, doc.recognition.split("·")[-1].strip())
        # QR code with the verification address, bottom right.
        qr = QrCodeWidget(doc.verify_url, barLevel="M")
        x0, y0, x1, y1 = qr.getBounds()
        size = 24 * mm
        d = Drawing(size, size, transform=[size / (x1 - x0), 0, 0, size / (y1 - y0), 0, 0])
        d.add(qr)
        renderPDF.draw(d, canvas, w - 18 * mm - size, 10 * mm)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.setFont(font, 7.5)
        canvas.drawString(18 * mm, 20 * mm, f"报告验证 Verification: {doc.verify_url}")
        canvas.drawString(18 * mm, 16 * mm,
                          f"验证码 {doc.verify_code}    报告号 {doc.report_id}-v{doc.version}")
        canvas.drawString(18 * mm, 12 * mm, "本报告经数字签名(PAdES)，任何改动都会使签名失效。"
                                            f"  第 {canvas.getPageNumber()} 页")
        canvas.restoreState()

    return draw


def render_pdf(doc: ReportDocument, *, font_path: str | None = None) -> bytes:
    """Render ``doc`` to PDF bytes (unsigned; see :func:`hub.reports.signing.sign_pdf`).

    Raises:
        FontMissing: no CJK font installed.
    """
    font = register_font(font_path)
    st = _styles(font)
    buf = BytesIO()
    pdf = SimpleDocTemplate(buf, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm,
                            topMargin=16 * mm, bottomMargin=38 * mm,
                            title=f"{doc.title} {doc.report_id}-v{doc.version}",
                            author=doc.reporting_institution, subject=doc.exam_name,
                            creator="Yigong Hub")
    story: list = [
        Paragraph(_esc(doc.reporting_institution), st["title"]),
        Paragraph(_esc(doc.title) + (" (急诊报告)" if doc.preliminary else ""), st["subtitle"]),
        Spacer(1, 4 * mm),
    ]
    c = st["cell"]
    info = [
        [Paragraph(f"姓名：{_esc(doc.patient_name)}", c),
         Paragraph(f"性别：{_esc(doc.patient_sex)}", c),
         Paragraph(f"年龄：{_esc(doc.patient_age)}", c),
         Paragraph(f"患者ID：{_esc(doc.patient_local_id)}", c)],
        [Paragraph(f"送检机构：{_esc(doc.source_institution)}", c),
         Paragraph(f"检查类型：{_esc(doc.modality)}", c),
         Paragraph(f"检查号：{_esc(doc.accession)}", c),
         Paragraph(f"检查时间：{local_time(doc.exam_at)}", c)],
        [Paragraph(f"检查项目：{_esc(doc.exam_name)}", c), "", "", ""],
    ]
    t = Table(info, colWidths=[44 * mm, 40 * mm, 44 * mm, 46 * mm])
    t.setStyle(TableStyle([
        ("LINEABOVE", (0, 0), (-1, 0), 1.2, colors.HexColor("#1f3b63")),
        ("LINEBELOW", (0, -1), (-1, -1), 0.6, colors.HexColor("#1f3b63")),
        ("SPAN", (0, 2), (-1, 2)),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))
    story += [t, Spacer(1, 3 * mm)]
    if doc.critical_note:
        story.append(Paragraph(f"<font color='#c62828'>危急值：{_esc(doc.critical_note)}</font>",
                               st["base"]))
    if doc.images:
        cells = []
        for img in doc.images[:2]:
            reader = ImageReader(BytesIO(img.data))
            iw, ih = reader.getSize()
            max_w = (170 if len(doc.images) == 1 and iw > ih else 80) * mm
            max_h = 62 * mm
            scale = min(max_w / iw, max_h / ih)
            cells.append([Image(BytesIO(img.data), iw * scale, ih * scale),
                          Paragraph(_esc(img.caption), st["small"])])
        img_table = Table([[cell for cell in cells]], hAlign="CENTER")
        img_table.setStyle(TableStyle([("ALIGN", (0, 0), (-1, -1), "CENTER")]))
        story += [img_table, Spacer(1, 2 * mm)]
    if doc.fields:
        rows = [[Paragraph(_esc(k), c), Paragraph(_esc(v), c)] for k, v in doc.fields]
        ft = Table(rows, colWidths=[40 * mm, 134 * mm], hAlign="LEFT")
        ft.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#b0b8c4")),
                                ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#eef2f7"))]))
        story += [ft]
    story += [
        Paragraph(_esc(doc.findings_label), st["h"]),
        Paragraph(_esc(doc.findings) or "—", st["base"]),
        Paragraph(_esc(doc.impression_label), st["h"]),
        Paragraph(_esc(doc.impression) or "—", st["base"]),
    ]
    for a in doc.addenda:
        story.append(KeepTogether([
            Paragraph(f"{_esc(a.title)}（{local_time(a.at)}，{_esc(a.author)}）", st["h"]),
            Paragraph(_esc(a.text), st["base"]),
            Paragraph(f"原因：{_esc(a.reason)}", st["small"]),
        ]))
    story.append(Spacer(1, 5 * mm))
    sig_rows = [[Paragraph(f"{_esc(s.role)}：{_esc(s.name)}", c),
                 Paragraph(f"时间：{local_time(s.at)}", c)] for s in doc.signers]
    if sig_rows:
        stbl = Table(sig_rows, colWidths=[70 * mm, 70 * mm], hAlign="LEFT")
        stbl.setStyle(TableStyle([("LINEABOVE", (0, 0), (-1, 0), 0.6,
                                   colors.HexColor("#1f3b63"))]))
        story.append(KeepTogether([stbl]))
    if doc.recognition:
        story.append(Paragraph(f"本结果为医共体互认结果（{_esc(doc.recognition)}），"
                               "在有效期内各成员单位予以互认。", st["small"]))
    story.append(Paragraph("本报告仅供临床参考。", st["small"]))
    decorate = _decorate(doc, font)
    pdf.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return buf.getvalue()
