"""Hub settings, read once from ``YIGONG_*`` environment variables at each entry point."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting has an environment variable ``YIGONG_<NAME>``; see README for the table."""

    model_config = SettingsConfigDict(env_prefix="YIGONG_", extra="ignore")

    data_dir: Path = Field(Path("./yigong-data"), description="Root of all local state")
    database_url: str = Field("", description="SQLAlchemy URL; empty = SQLite in data_dir")
    broker_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker")
    secret_key: str = Field(
        "", description="JWT signing key; empty = generated once and kept in data_dir"
    )
    token_minutes: int = Field(480, description="Bearer token lifetime (one shift)")

    api_host: str = Field("127.0.0.1", description="Address the API listens on")
    api_port: int = Field(8000, description="API port")

    orthanc_url: str = Field("http://127.0.0.1:8042", description="Orthanc REST base URL")
    orthanc_user: str = Field("yigong", description="Orthanc REST user")
    orthanc_password: str = Field(
        "yigong", description="Orthanc REST password (loopback default; set it in production)"
    )
    orthanc_dicom_port: int = Field(4242, description="Orthanc DICOM port")
    orthanc_aet: str = Field("YIGONG", description="Orthanc AE title")
    orthanc_binary: str = Field("/usr/sbin/Orthanc", description="Orthanc binary `yigong up` runs")
    orthanc_plugins_dir: str = Field(
        "/usr/share/orthanc/plugins", description="Where the DICOMweb plugin is looked for"
    )
    orthanc_stable_age: int = Field(10, description="Seconds before Orthanc calls a study stable")
    orthanc_timeout: float = Field(10.0, description="Seconds per Orthanc REST call")
    changes_poll_seconds: float = Field(2.0, description="How often beat follows /changes")
    changes_budget_seconds: float = Field(
        20.0, description="Longest one follower run lasts; its lock expires 10 s after that"
    )

    lead_institution: str = Field("LEAD", description="Code of the lead hospital")
    claim_minutes: int = Field(30, description="A reader's claim expires after this")
    turnaround_minutes: dict[str, int] = Field(
        default_factory=lambda: {"stat:ecg": 15, "stat:imaging": 30, "stat:lab": 30, "stat": 30,
                                 "urgent": 120, "routine": 1440},
        description='Minutes from receipt to final report, keyed "priority:kind" or "priority"',
    )
    specialty_by_modality: dict[str, str] = Field(
        default_factory=lambda: {
            "CT": "radiology", "MR": "radiology", "CR": "radiology", "DX": "radiology",
            "DR": "radiology", "US": "radiology", "MG": "radiology", "XA": "radiology",
            "RF": "radiology", "NM": "radiology", "PT": "radiology", "OT": "radiology",
            "SR": "radiology", "ECG": "cardiology", "HD": "cardiology",
        },
        description="Which specialty reads each modality (JSON object)",
    )
    task_max_retries: int = Field(8, description="Celery retries before dead-lettering")
    ecg_urgency: dict[str, float | str] = Field(
        default_factory=dict,
        description="Overrides of ECG critical-value thresholds (fields of "
                    "hub.domain.ecg_urgency.UrgencyRules, e.g. {\"qtc_ms\": 550})",
    )

    # reports
    report_verify_ranks: list[str] = Field(
        default_factory=lambda: ["attending", "associate_chief", "chief"],
        description="User ranks allowed to verify (审核) reports; residents and trainees are not",
    )
    report_single_signoff: list[str] = Field(
        default_factory=lambda: ["lab_review"],
        description="Report templates whose writer may also verify (single sign-off)",
    )
    report_public_url: str = Field(
        "http://127.0.0.1:8000", description="Base URL printed in the report QR code (/verify/…)"
    )
    report_critical_escalate_minutes: int = Field(
        10, description="Minutes without acknowledgement before a critical result escalates"
    )
    report_critical_max_level: int = Field(3, description="Highest escalation level")
    report_cert_days: int = Field(730, description="Days a community-CA certificate is valid")
    report_font: str = Field("", description="CJK TrueType font for PDFs; empty = Debian paths")

    @field_validator("database_url")
    @classmethod
    def _normalise_driver(cls, v: str) -> str:
        # psycopg 3 is the installed driver; accept the bare postgresql:// spelling too.
        if v.startswith("postgresql://"):
            return "postgresql+psycopg://" + v.removeprefix("postgresql://")
        if v.startswith("postgres://"):
            return "postgresql+psycopg://" + v.removeprefix("postgres://")
        return v

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hub.sqlite3').resolve()}"

    def resolved_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret.key"
        if not path.exists():
            import secrets

            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
