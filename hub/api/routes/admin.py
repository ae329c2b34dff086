"""Users, institutions and dead letters: administrators only."""

from fastapi import APIRouter, status
from sqlalchemy import select

from hub.api.deps import AdminUser, SessionDep
from hub.api.schemas import InstitutionIn, InstitutionOut, UserIn, UserOut
from hub.db.models import DeadLetter, Institution, User
from hub.services.users import create_user, upsert_institution

router = APIRouter(prefix="/api", tags=["admin"])


@router.get("/users", response_model=list[UserOut], summary="All users")
def list_users(session: SessionDep, _admin: AdminUser) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED,
             summary="Create a user")
def add_user(body: UserIn, session: SessionDep, admin: AdminUser) -> User:
    return create_user(session, admin.actor, body.username, body.password, body.role,
                       body.institution_code, body.display_name, body.rank)


@router.get("/institutions", response_model=list[InstitutionOut],
            summary="The lead hospital and its branches")
def list_institutions(session: SessionDep, _admin: AdminUser) -> list[Institution]:
    return list(session.scalars(select(Institution).order_by(Institution.code)))


@router.put("/institutions/{code}", response_model=InstitutionOut,
            summary="Create or update an institution")
def put_institution(code: str, body: InstitutionIn, session: SessionDep,
                    admin: AdminUser) -> Institution:
    return upsert_institution(session, admin.actor, code, body.name, body.is_lead,
                              body.ae_titles, body.hl7_facilities)


@router.get("/dead-letters", summary="Tasks that failed for good, with their errors")
def list_dead_letters(session: SessionDep, _admin: AdminUser) -> list[dict]:
    rows = session.scalars(select(DeadLetter).order_by(DeadLetter.id.desc()).limit(500))
    return [{"id": d.id, "task": d.task_name, "task_id": d.task_id, "args": d.args,
             "error": d.error, "failed_at": d.failed_at, "resolved": d.resolved} for d in rows]
