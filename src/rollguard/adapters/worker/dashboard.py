"""The worker's dashboard at ``/``: the report's page, live, from the rollouts this worker holds.

Faust serves an index of its own at ``/`` (``{"status": "OK"}``, its "production index" blueprint,
mounted when ``web_stats_enabled`` is off). Two routes on one path would leave the answer to the
router's order, so the worker's web driver is a subclass that mounts no production blueprint
(:class:`DashboardWeb`, used by :class:`WorkerFaustApp`): ``/`` is the dashboard and nothing else. Faust's
other pages (``/router``, ``/table``, ``/graph``, statistics) stay off by settings.

The page is read-only (GET and HEAD only), bound where ``worker.web_bind`` says (127.0.0.1 unless
configured), and works offline: its style and charts are inline (:mod:`rollguard.report`). The data is
read on the event loop (a consistent view of the pipelines) and rendered to HTML in a thread, so a
page view does not hold up the stream for the rendering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import faust
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from rollguard.pipeline.rollout import RolloutPipeline
from rollguard.report.history import History
from rollguard.report.render import render_page


class DashboardWeb(AiohttpWeb):
    """Faust's aiohttp web driver without the production index at ``/`` (the dashboard is there)."""

    production_blueprints: ClassVar[list[Any]] = []


class WorkerFaustApp(faust.App):
    """The worker's Faust app: its web server is :class:`DashboardWeb`."""

    def _new_web(self) -> Any:
        return DashboardWeb(self)


def mount_dashboard(
    app: faust.App, pipelines: Callable[[], Iterable[RolloutPipeline]], history: History, app_id: str
) -> None:
    """Serve the dashboard of ``pipelines()`` (the rollouts held now) at ``/``."""

    @app.page("/")
    async def dashboard(self: Any, request: Any) -> Any:
        records = history.records(pipelines())
        held = len(records)
        subtitle = (
            f"Live from worker {app_id}: {held} rollout(s) held by this worker. Event time is each "
            "rollout's own clock; read-only."
        )
        live = request.query.get("static") is None  # ?static=1: the page to save, without its refresh
        html = await asyncio.get_running_loop().run_in_executor(
            None, lambda: render_page(records, title="rollguard dashboard", subtitle=subtitle, live=live)
        )
        return self.html(html, headers={"Cache-Control": "no-store"})

    del dashboard
