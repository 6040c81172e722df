"""The dashboard's pages: `/` whole, and `/dashboard/panel`, the part the page's script fetches
to refresh itself."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape

from priorizer.config import Settings
from priorizer.dashboard import formats, service
from priorizer.db import Database
from priorizer.status.api import current_status
from priorizer.web.deps import DbDep, NowDep, SettingsDep

router = APIRouter(include_in_schema=False)

_environment = Environment(
    loader=PackageLoader("priorizer.dashboard", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters.update(formats.FILTERS)
templates = Jinja2Templates(env=_environment)

# Nothing but what this server sends: a page that loads from elsewhere would leak who watches,
# and break with no internet.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, db: DbDep, settings: SettingsDep, now: NowDep) -> HTMLResponse:
    return _render("dashboard.html", request, db=db, settings=settings, now=now)


@router.get("/dashboard/panel", response_class=HTMLResponse)
def panel(request: Request, db: DbDep, settings: SettingsDep, now: NowDep) -> HTMLResponse:
    return _render("panel.html", request, db=db, settings=settings, now=now)


def _render(
    template: str, request: Request, *, db: Database, settings: Settings, now: datetime
) -> HTMLResponse:
    with db.read() as session:
        view = service.overview(session, replication_target=settings.replication_target)
    context = {
        **view,
        "status": current_status(request, view["figures"]),
        "refresh_seconds": settings.dashboard_refresh_seconds,
        "failure_threshold": settings.failure_threshold,
        "now": now,
    }
    return templates.TemplateResponse(request, template, context, headers=SECURITY_HEADERS)
