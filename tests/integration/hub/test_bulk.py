"""Batch statements (hub.db.bulk) on SQLite and on a real PostgreSQL.

Announced lookups (prefetch_*) must give the answers asking directly gives, in fewer statements
on PostgreSQL, and never stale rows; parents and children inserted together must point at
each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Numeric, Table
from sqlalchemy.orm import Session

from hub.db import bulk
from hub.db.bulk import (
    insert_new_returning_ids,
    insert_rows,
    insert_with_children,
    prefetch_where_any,
    prefetch_where_in,
    select_where_any,
    select_where_in,
)
from hub.db.models import Institution, Patient, PatientIdentifier, PatientLinkSuggestion
from hub.db.session import get_sessionmaker

IDENTIFIED = Patient.id == PatientIdentifier.patient_id
LOCAL_ID = [PatientIdentifier.institution_code, PatientIdentifier.local_id]
KNOWN = [Patient.id, Patient.name, Patient.birth_date]


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    maker = get_sessionmaker(db_url)
    with maker() as s, s.begin():
        insert_rows(s, Institution.__table__, [
            {"code": code, "name": code, "is_lead": False, "ae_titles": [],
             "hl7_facilities": []} for code in ("BR1", "BR2", "BR3")])
        for n, (name, born) in enumerate([("王芳", date(1950, 3, 1)), ("李雷", date(1961, 7, 2))]):
            pid = s.execute(Patient.__table__.insert().values(
                name=name, birth_date=born, created_at=datetime.now(UTC))
                .returning(Patient.id)).scalar_one()
            s.execute(PatientIdentifier.__table__.insert().values(
                institution_code="BR1", local_id=f"P{n}", patient_id=pid))
    with maker() as s:
        yield s


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every statement hub.db.bulk sends to PostgreSQL itself."""
    sent: list[str] = []
    real = bulk._cursor

    class Traced:
        def __init__(self, cursor: Any) -> None:
            self.cursor = cursor

        def execute(self, sql: str, *args: Any, **kw: Any) -> Any:
            sent.append(sql)
            return self.cursor.execute(sql, *args, **kw)

    def counting(conn: Any) -> Traced:
        return Traced(real(conn))

    monkeypatch.setattr(bulk, "_cursor", counting)
    return sent


def is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def test_announced_lookups_answer_like_direct_ones_in_one_statement(
        session: Session, statements: list[str]) -> None:
    with session.begin():
        prefetch_where_in(session, KNOWN, LOCAL_ID, [("BR1", "P0"), ("BR1", "P1"), ("BR2", "X")],
                          join_on=IDENTIFIED)
        prefetch_where_any(session, [Institution.code], [(Institution.code, ["BR2", "BR9"])])
        assert statements == []  # nothing is sent before a read
        known = select_where_in(session, KNOWN, LOCAL_ID, [("BR1", "P0"), ("BR2", "X")],
                                join_on=IDENTIFIED)
        codes = select_where_any(session, [Institution.code], [(Institution.code, ["BR2"])])
        direct = select_where_in(session, KNOWN, LOCAL_ID, [("BR1", "P0"), ("BR2", "X")],
                                 join_on=IDENTIFIED)
    assert [(name, born) for _pid, name, born in known] == [("王芳", date(1950, 3, 1))]
    assert isinstance(known[0][2], date)  # read back from JSON as what the driver returns
    assert known == direct
    assert codes == [("BR2",)]
    if is_pg(session):
        # The two announced lookups in one statement, then the direct one.
        assert len(statements) == 2 and "UNION ALL" in statements[0]


def test_a_lookup_wider_than_announced_asks_the_database(session: Session,
                                                         statements: list[str]) -> None:
    with session.begin():
        prefetch_where_in(session, KNOWN, LOCAL_ID, [("BR1", "P0")], join_on=IDENTIFIED)
        rows = select_where_in(session, KNOWN, LOCAL_ID, [("BR1", "P0"), ("BR1", "P1")],
                               join_on=IDENTIFIED)
    assert sorted(name for _pid, name, _born in rows) == ["李雷", "王芳"]


def announce_two_and_read_one(session: Session, code: str) -> None:
    """Announce a lookup of ``code`` and another one, then read the other: both have run."""
    prefetch_where_any(session, [Institution.code], [(Institution.code, [code])])
    prefetch_where_in(session, KNOWN, LOCAL_ID, [("BR1", "P0")], join_on=IDENTIFIED)
    select_where_in(session, KNOWN, LOCAL_ID, [("BR1", "P0")], join_on=IDENTIFIED)


def test_a_write_to_a_looked_up_table_drops_the_answer_read_ahead(session: Session) -> None:
    with session.begin():
        announce_two_and_read_one(session, "BR8")
        insert_rows(session, Institution.__table__, [
            {"code": "BR8", "name": "BR8", "is_lead": False, "ae_titles": [],
             "hl7_facilities": []}])
        assert select_where_any(session, [Institution.code],
                                [(Institution.code, ["BR8"])]) == [("BR8",)]


def test_an_orm_write_drops_the_answer_read_ahead(session: Session) -> None:
    with session.begin():
        announce_two_and_read_one(session, "BR6")
        session.add(Institution(code="BR6", name="BR6"))
        session.flush()
        assert select_where_any(session, [Institution.code],
                                [(Institution.code, ["BR6"])]) == [("BR6",)]


def test_answers_read_ahead_end_with_the_transaction(db_url: str, session: Session) -> None:
    with session.begin():
        announce_two_and_read_one(session, "BR4")
    with get_sessionmaker(db_url)() as other, other.begin():
        other.add(Institution(code="BR4", name="BR4"))
    with session.begin():
        assert select_where_any(session, [Institution.code],
                                [(Institution.code, ["BR4"])]) == [("BR4",)]


def test_an_insert_carries_the_announced_lookups(session: Session,
                                                 statements: list[str]) -> None:
    rows = [{"code": code, "name": code, "is_lead": False, "ae_titles": [],
             "hl7_facilities": []} for code in ("BR2", "BR5", "BR6")]
    with session.begin():
        prefetch_where_in(session, KNOWN, LOCAL_ID, [("BR1", "P1")], join_on=IDENTIFIED)
        ids = insert_new_returning_ids(session, Institution.__table__, rows, [Institution.code])
        known = select_where_in(session, KNOWN, LOCAL_ID, [("BR1", "P1")], join_on=IDENTIFIED)
        stored = dict(select_where_in(session, [Institution.code, Institution.id],
                                      [Institution.code], [("BR5",), ("BR6",)]))
    assert ids[0] is None  # BR2 was there already
    assert ids[1:] == [stored["BR5"], stored["BR6"]]
    assert [name for _pid, name, _born in known] == ["李雷"]
    if is_pg(session):
        assert statements[0].startswith("WITH head AS (INSERT INTO institutions")
        assert len(statements) == 2


def test_parents_and_children_in_one_statement(session: Session, statements: list[str]) -> None:
    now = datetime.now(UTC)
    parents = [{"name": name, "birth_date": None, "sex": None, "national_id": None,
                "insurance_no": None, "merged_into_id": None, "created_at": now}
               for name in ("甲", "乙", "丙")]
    with session.begin():
        first, second = sorted(i for (i,) in select_where_in(
            session, [PatientIdentifier.patient_id], [PatientIdentifier.local_id],
            [("P0",), ("P1",)]))
        # Children point at their parent by index: two at 乙, one at 甲, none at 丙.
        children = [{"patient_id": index, "candidate_id": candidate, "status": "open",
                     "created_at": now} for index, candidate in ((1, first), (0, first),
                                                                  (1, second))]
        ids = insert_with_children(session, Patient.__table__, parents,
                                   PatientLinkSuggestion.__table__, children, "patient_id")
        names = dict(select_where_in(session, [Patient.id, Patient.name], [Patient.id],
                                     [(i,) for i in ids]))
        linked = select_where_in(session, [PatientLinkSuggestion.patient_id],
                                 [PatientLinkSuggestion.patient_id], [(i,) for i in ids])
    assert [names[i] for i in ids] == ["甲", "乙", "丙"]
    assert sorted(names[pid] for (pid,) in linked) == ["乙", "乙", "甲"]
    if is_pg(session):
        assert statements[1].startswith("WITH parent AS (INSERT INTO patients")
        assert len(statements) == 4  # ids, the insert, two checks


def test_a_rolled_back_savepoint_drops_the_answer_read_ahead(session: Session) -> None:
    with session.begin():
        savepoint = session.begin_nested()
        insert_rows(session, Institution.__table__, [
            {"code": "BR9", "name": "BR9", "is_lead": False, "ae_titles": [],
             "hl7_facilities": []}])
        announce_two_and_read_one(session, "BR9")  # the answer read ahead holds BR9
        savepoint.rollback()
        assert select_where_any(session, [Institution.code],
                                [(Institution.code, ["BR9"])]) == []


def test_a_lookup_json_cannot_carry_exactly_is_refused(session: Session) -> None:
    prices = Table("prices", MetaData(), Column("id", Integer, primary_key=True),
                   Column("amount", Numeric(10, 4)))
    with session.begin():
        if is_pg(session):
            with pytest.raises(TypeError, match="Decimal"):
                prefetch_where_in(session, [prices.c.amount], [prices.c.id], [(1,)])
        else:  # nothing is announced on SQLite, so nothing to refuse
            prefetch_where_in(session, [prices.c.amount], [prices.c.id], [(1,)])
