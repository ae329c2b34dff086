from fastapi import APIRouter, Request
from sqlalchemy import text

from hub.api.deps import SessionDep, SettingsDep
from hub.api.schemas import ComponentHealth, Health
from hub.orthanc.errors import OrthancError

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/health", response_model=Health, summary="State of each component (no login)")
def health(request: Request, session: SessionDep, settings: SettingsDep) -> Health:
    components: dict[str, ComponentHealth] = {}
    try:
        session.execute(text("SELECT 1"))
        components["database"] = ComponentHealth(state="up", detail=session.bind.dialect.name)
    except Exception as exc:  # noqa: BLE001 - report, never fail the health route
        components["database"] = ComponentHealth(state="down", detail=str(exc)[:200])
    try:
        version = request.app.state.orthanc.ping().get("Version", "")
        components["orthanc"] = ComponentHealth(state="up", detail=f"Orthanc {version}")
    except OrthancError as exc:
        components["orthanc"] = ComponentHealth(state="down", detail=str(exc)[:200])
    try:
        import redis

        redis.Redis.from_url(settings.broker_url, socket_timeout=1,
                             socket_connect_timeout=1).ping()
        components["broker"] = ComponentHealth(state="up", detail="redis")
    except Exception as exc:  # noqa: BLE001
        components["broker"] = ComponentHealth(state="down", detail=str(exc)[:200])
    overall = "ok" if all(c.state == "up" for c in components.values()) else "degraded"
    return Health(status=overall, components=components)
