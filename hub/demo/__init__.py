"""Demo community: institutions, users and a small synthetic study, all made here in code."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import audit
from hub.db.models import User
from hub.domain.access import Role
from hub.services.users import create_user, upsert_institution

logger = logging.getLogger(__name__)

INSTITUTIONS = [
    ("LEAD", "县人民医院", True, ["YIGONG", "LEAD-PACS"], ["LEADLIS"]),
    ("BR01", "城关镇卫生院", False, ["BR01-CT", "BR01-DR", "BR01-US", "YIGONG-NODE"], ["BR01HIS"]),
    ("BR02", "青山乡卫生院", False, ["BR02-DR", "BR02-ECG"], ["BR02HIS"]),
]

USERS = [
    ("admin", Role.ADMIN, "LEAD", "系统管理员", None),
    ("dr.li", Role.RADIOLOGIST, "LEAD", "李放射", "attending"),
    ("dr.zhao", Role.RADIOLOGIST, "LEAD", "赵主任", "chief"),
    ("dr.chen", Role.CARDIOLOGIST, "LEAD", "陈心电", "attending"),
    ("dr.sun", Role.LAB_PHYSICIAN, "LEAD", "孙检验", "attending"),
    ("tech.br01", Role.TECHNICIAN, "BR01", "城关技师", None),
    ("doc.br01", Role.CLINICIAN, "BR01", "城关医生", None),
    ("tech.br02", Role.TECHNICIAN, "BR02", "青山技师", None),
]


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    role: str
    institution: str


def seed(session: Session) -> list[DemoUser]:
    """Create demo institutions and users; returns users created now (with their passwords)."""
    for code, name, is_lead, aets, facilities in INSTITUTIONS:
        upsert_institution(session, audit.SYSTEM, code, name, is_lead, aets, facilities)
    created = []
    for username, role, inst, display, rank in USERS:
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            continue
        password = secrets.token_urlsafe(9)
        create_user(session, audit.SYSTEM, username, password, role, inst, display, rank)
        created.append(DemoUser(username, password, role.value, inst))
    return created


def node_service_login(session: Session, data_dir: Path, institution: str = "BR01",
                       ) -> tuple[str, str]:
    """The branch node's own hub account; its password is kept in the data dir (mode 0600)."""
    username = f"node.{institution.lower()}"
    secret = data_dir / f"{username}.password"
    if session.scalar(select(User.id).where(User.username == username)) is None or \
            not secret.exists():
        password = secrets.token_urlsafe(16)
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            create_user(session, audit.SYSTEM, username, password, Role.TECHNICIAN, institution,
                        "分院DICOM节点")
        else:
            from hub.security import hash_password

            user.password_hash = hash_password(password)
        data_dir.mkdir(parents=True, exist_ok=True)
        secret.write_text(password)
        secret.chmod(0o600)
    return username, secret.read_text().strip()


def synthetic_ct(slices: int = 20, size: int = 64, name: str = "Wang^XiaoDong=王^小东",
                 patient_id: str = "BR01-000123", charset: str = "GB18030") -> list[Dataset]:
    """A small CT series with a Chinese patient name, pixel data a smooth phantom."""
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for i in range(slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        sop = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.SpecificCharacterSet = charset
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID = name, patient_id
        ds.PatientBirthDate, ds.PatientSex = "19650312", "M"
        ds.StudyDate = ds.SeriesDate = "20261126"
        ds.StudyTime = "093000"
        ds.AccessionNumber = "DEMO0001"
        ds.Modality, ds.BodyPartExamined = "CT", "CHEST"
        ds.StudyDescription = "胸部CT平扫"
        ds.SeriesNumber, ds.InstanceNumber = 1, i + 1
        ds.ImagePositionPatient = [0, 0, float(i * 5)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceThickness, ds.PixelSpacing = 5.0, [0.7, 0.7]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.WindowCenter, ds.WindowWidth = 40, 400
        r = np.hypot(yy - size / 2, xx - size / 2)
        body = np.where(r < size * 0.4, 1064, 24) + (np.sin((i + 1) * r / 6) * 40)
        ds.PixelData = body.astype(np.int16).tobytes()
        out.append(ds)
    return out
