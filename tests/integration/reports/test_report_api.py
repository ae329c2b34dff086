"""Report sign-off over the API on SQLite and PostgreSQL: the happy path, and every refusal
leaving the database unchanged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from hub.clock import utcnow
from hub.db.models import WorklistItem
from hub.db.report_models import SigningCertificate
from hub.db.session import session_scope
from hub.domain.priority import Priority
from hub.reports import ca
from hub.reports.verify import validate_pdf
from tests.integration.reports.conftest import (
    HEAD_CT_DRAFT,
    add_item,
    login,
    passphrase,
    snapshot,
    write_and_submit,
)

pytestmark = pytest.mark.integration


def trust(client):
    with session_scope(client.db_url) as s:
        return ca.trust_roots(s), ca.revoked_serials(s)


def item_status(client, item_id):
    with session_scope(client.db_url) as s:
        return s.get(WorklistItem, item_id).status


def test_radiologist_writes_chief_verifies_and_the_pdf_is_signed(report_api):
    api = report_api
    item_id, _ = add_item(api.db_url, "1.2.3.100")
    write_and_submit(api, item_id)
    assert item_status(api, item_id) == "in_progress"
    r = api.post(f"/api/worklist/{item_id}/report/verify", headers=login(api, "dr.zhao"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "final" and body["verifier"]["username"] == "dr.zhao"
    assert body["writer"]["name"] == "李放射"
    assert body["verified_at"].endswith(":00+00:00")  # recorded to the minute
    assert [v["kind"] for v in body["versions"]] == ["final"]
    assert body["signatures"][0]["role"] == "verifier"
    assert item_status(api, item_id) == "final"
    # No HIS endpoint configured for BR01 here: HL7 is recorded as skipped, not lost.
    assert {d["channel"]: d["status"] for d in body["delivery"]}["hl7"] == "skipped"

    pdf = api.get(body["pdf_url"], headers=login(api, "dr.li"))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    roots, revoked = trust(api)
    check = validate_pdf(pdf.content, roots, revoked)
    assert check.ok, check
    assert "赵主任" in check.signatures[0].signer

    public = api.get(f"/verify/{body['verify_code']}")
    assert public.status_code == 200
    pv = public.json()
    assert pv["valid"] is True and pv["patient"] == "王*东"
    assert "findings" not in str(pv)  # the code holder does not see the report text
    assert pv["versions"][0]["signers"][0]["signature_valid"] is True
    posted = api.post(f"/verify/{body['verify_code']}/pdf", content=pdf.content,
                      headers={"Content-Type": "application/pdf"}).json()
    assert posted["pdf"]["intact"] is True and posted["pdf"]["matches_version"] == 1
    assert api.get("/verify/not-a-code").status_code == 404

    fhir = api.get(f"/api/fhir/DiagnosticReport/{body['id']}", headers=login(api, "dr.li"))
    assert fhir.status_code == 200
    dr = fhir.json()
    assert dr["resourceType"] == "DiagnosticReport" and dr["status"] == "final"
    assert dr["conclusion"] == HEAD_CT_DRAFT["impression"]
    binary_url = dr["presentedForm"][0]["url"]
    binary = api.get(binary_url[binary_url.index("/api/"):], headers=login(api, "dr.li"))
    assert binary.json()["contentType"] == "application/pdf"
    import base64

    assert base64.b64decode(binary.json()["data"]) == pdf.content


def test_branch_clinician_reads_own_institutions_report_but_not_others(report_api):
    api = report_api
    item_id, _ = add_item(api.db_url, "1.2.3.101", inst="BR02")
    write_and_submit(api, item_id)
    api.post(f"/api/worklist/{item_id}/report/verify", headers=login(api, "dr.zhao"))
    # doc.br01 is at BR01; this item is BR02's and the report is not recognised (no QC on file).
    assert api.get(f"/api/worklist/{item_id}/report",
                   headers=login(api, "doc.br01")).status_code == 404
    rid = api.get(f"/api/worklist/{item_id}/report", headers=login(api, "dr.li")).json()["id"]
    assert api.get(f"/api/reports/{rid}/pdf", headers=login(api, "doc.br01")).status_code == 404


REFUSALS = {
    "expired certificate": ("dr.zhao", 403, "expired"),
    "revoked certificate": ("dr.zhao", 403, "revoked"),
    "resident rank": ("dr.wu", 403, "rank resident"),
    "user without rank": ("dr.norank", 403, "no rank"),
    "other specialty": ("dr.chen", 403, "may not report a radiology"),
    "writer verifies own": ("dr.li", 403, "own report"),
    "clinician": ("doc.br01", 403, "does not write reports"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_verify_changes_nothing(report_api, case):
    api = report_api
    user, status, reason = REFUSALS[case]
    item_id, _ = add_item(api.db_url, f"1.2.3.2{sorted(REFUSALS).index(case)}")
    write_and_submit(api, item_id)
    with session_scope(api.db_url) as s:
        if case == "expired certificate":
            ca.issue(s, "dr.zhao", passphrase(api.settings), utcnow(), days=30,
                     not_before=utcnow() - timedelta(days=31))
        if case == "revoked certificate":
            ca.revoke(s, "dr.zhao", utcnow(), "key compromise")
    headers = login(api, user)
    before = snapshot(api.db_url)
    r = api.post(f"/api/worklist/{item_id}/report/verify", headers=headers)
    assert r.status_code == status, r.text
    assert reason in r.json()["detail"]
    assert snapshot(api.db_url) == before


def test_second_verify_and_unreasoned_amendment_are_refused_without_change(report_api):
    api = report_api
    item_id, _ = add_item(api.db_url, "1.2.3.300")
    write_and_submit(api, item_id)
    chief = login(api, "dr.zhao")
    assert api.post(f"/api/worklist/{item_id}/report/verify", headers=chief).status_code == 200
    writer = login(api, "dr.li")
    before = snapshot(api.db_url)
    r = api.post(f"/api/worklist/{item_id}/report/verify", headers=chief)
    assert r.status_code == 409 and "final" in r.json()["detail"]
    r = api.post(f"/api/worklist/{item_id}/report/addendum", headers=chief,
                 json={"kind": "amendment", "impression": "改为：脑出血", "reason": ""})
    assert r.status_code == 422 and "reason" in r.json()["detail"]
    r = api.put(f"/api/worklist/{item_id}/report/draft", headers=writer, json=HEAD_CT_DRAFT)
    assert r.status_code == 409 and "addendum" in r.json()["detail"]
    assert snapshot(api.db_url) == before


def test_bad_template_fields_are_422(report_api):
    api = report_api
    item_id, _ = add_item(api.db_url, "1.2.3.301")
    h = login(api, "dr.li")
    before = snapshot(api.db_url)
    r = api.put(f"/api/worklist/{item_id}/report/draft", headers=h,
                json={**HEAD_CT_DRAFT, "fields": {"hemorrhage": "maybe"}})
    assert r.status_code == 422 and "颅内出血" in r.json()["detail"]
    r = api.put(f"/api/worklist/{item_id}/report/draft", headers=h,
                json={**HEAD_CT_DRAFT, "template": "mri_knee"})
    assert r.status_code == 422
    assert snapshot(api.db_url) == before


def test_amendment_is_signed_and_the_original_stays(report_api):
    api = report_api
    item_id, _ = add_item(api.db_url, "1.2.3.302")
    write_and_submit(api, item_id)
    chief = login(api, "dr.zhao")
    first = api.post(f"/api/worklist/{item_id}/report/verify", headers=chief).json()
    r = api.post(f"/api/worklist/{item_id}/report/addendum", headers=chief, json={
        "kind": "amendment", "impression": "左侧基底节区急性脑梗死。", "reason": "复阅DWI后更正"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [v["kind"] for v in body["versions"]] == ["final", "amendment"]
    assert body["versions"][0]["sha256"] == first["versions"][0]["sha256"]
    assert body["versions"][0]["impression"] == HEAD_CT_DRAFT["impression"]
    assert body["impression"] == "左侧基底节区急性脑梗死。"
    assert item_status(api, item_id) == "final"
    roots, revoked = trust(api)
    for n in (1, 2):
        pdf = api.get(f"/api/reports/{body['id']}/pdf?version={n}", headers=chief).content
        assert validate_pdf(pdf, roots, revoked).ok
    addendum = api.post(f"/api/worklist/{item_id}/report/addendum", headers=chief, json={
        "kind": "addendum", "text": "建议复查MRI。", "reason": "补充建议"}).json()
    assert addendum["versions"][-1]["text"] == "建议复查MRI。"
    assert api.get(f"/verify/{body['verify_code']}").json()["versions"][-1]["number"] == 3


def test_preliminary_report_then_final(report_api):
    api = report_api
    item_id, _ = add_item(api.db_url, "1.2.3.303", priority=Priority.STAT)
    h = login(api, "dr.li")
    api.put(f"/api/worklist/{item_id}/report/draft", json=HEAD_CT_DRAFT, headers=h)
    r = api.post(f"/api/worklist/{item_id}/report/preliminary", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "preliminary" and item_status(api, item_id) == "preliminary"
    assert r.json()["versions"][0]["kind"] == "preliminary"
    r = api.post(f"/api/worklist/{item_id}/report/verify", headers=login(api, "dr.zhao"))
    assert r.status_code == 200 and r.json()["status"] == "final"
    stats = api.get("/api/stats/turnaround", headers=login(api, "admin")).json()
    row = next(x for x in stats if x["institution"] == "BR01" and x["specialty"] == "radiology")
    assert row["on_time"] >= 1


def test_templates_and_critical_result_acknowledgement(report_api):
    api = report_api
    h = login(api, "dr.li")
    codes = {t["code"] for t in api.get("/api/report-templates", headers=h).json()}
    assert {"dr_chest", "ct_head", "us_abdomen", "ecg_rest", "lab_review"} <= codes
    ecg = api.get("/api/report-templates?kind=ecg", headers=h).json()
    assert [t["code"] for t in ecg] == ["ecg_rest"] and ecg[0]["impression_label"] == "心电图诊断"
    item_id, _ = add_item(api.db_url, "1.2.3.304")
    r = api.post(f"/api/worklist/{item_id}/report/critical", headers=h,
                 json={"finding": "左侧硬膜下血肿", "notify": "城关镇卫生院 急诊 王医生"})
    assert r.status_code == 200, r.text
    alert_id = r.json()["id"]
    branch = login(api, "doc.br01")
    listed = api.get("/api/critical-alerts", headers=branch).json()
    assert [a["id"] for a in listed] == [alert_id]
    ack = api.post(f"/api/critical-alerts/{alert_id}/ack", headers=branch)
    assert ack.status_code == 200 and ack.json()["acknowledged_by"] == "doc.br01"
    assert api.post(f"/api/critical-alerts/{alert_id}/ack", headers=branch).status_code == 409
    other = login(api, "tech.br02")
    assert api.post(f"/api/critical-alerts/{alert_id}/ack", headers=other).status_code == 404
    with session_scope(api.db_url) as s:
        assert s.scalar(select(SigningCertificate.id).limit(1)) is not None
