"""The worker's dashboard at ``/``: the report's page, live, in a real browser (Debian's Chromium) — the
regressed cohort is shown regressed with its chart; ``/`` is the dashboard, not Faust's index; it is
read-only and loads nothing from anywhere else."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import httpx
import orjson
import pytest
from browser import chromium_page
from worker_kit import make_topics, produce, rollout_key, wait_until

from kafka_broker import free_port
from rollguard.adapters.worker import WorkerOptions, create_app
from rollguard.settings import Config
from rollguard.sim import generate, get_scenario

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]
SCREENSHOT_ENV = "ROLLGUARD_DASHBOARD_PNG"  # also copy the screenshot there (docs/dashboard.png)


def _events() -> list[bytes]:
    sc = get_scenario("error_spike_coding", seed=11, duration_s=480, rate_per_s=30, canary_weight=0.3,
                      start_s=120, error_rate=0.25)  # fmt: skip
    return [orjson.dumps(ev) for ev in generate(sc)]


def test_the_dashboard_shows_the_regressed_cohort_with_its_chart_in_chromium(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    events = _events()
    topics = make_topics(kafka_bootstrap)
    produce(kafka_bootstrap, topics.events, events, rollout_key)
    port = free_port()
    options = WorkerOptions(kafka_bootstrap, app_id=f"dash-{topics.events}", web_port=port, idle_after_s=2,
                            tick_s=0.2)  # fmt: skip
    wa = create_app(options, Config(), topics)
    base = f"http://127.0.0.1:{port}"
    shot = tmp_path / "dashboard.png"

    async def run() -> None:
        await wa.start()
        try:
            await wait_until(lambda: wa.stats.applied >= len(events), 240, "every event applied")
            rt = next(iter(wa.runtime.runtimes.values()))
            await wait_until(lambda: bool(rt.pipeline.status()["firing"]), 60, "the alert")
            async with httpx.AsyncClient(base_url=base) as http:
                index = await http.get("/")
                assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
                assert (
                    index.text.startswith("<!doctype html>")
                    and "<title>rollguard dashboard</title>" in index.text
                )
                assert (await http.post("/")).status_code == 405  # read-only
                for faust_page in ("/router/", "/table/", "/graph/", "/stats/"):
                    assert (await http.get(faust_page)).status_code == 404, faust_page
                assert (await http.get("/status")).json()["rollouts"]
            async with chromium_page() as page:
                requested: list[str] = []
                page.on("request", lambda r: requested.append(r.url))
                await page.goto(base + "/")
                coding = page.locator('details.cohort[data-cohort="input_class=coding"]')
                assert await coding.get_attribute("data-state") == "regressed"
                assert await coding.evaluate("d => d.open")  # a regressed cohort opens by itself
                errors = coding.locator('.metric[data-metric="error_rate"]')
                assert await errors.get_attribute("data-state") == "regressed"
                chart = errors.locator("svg.chart")
                await chart.wait_for(state="visible")
                box = await chart.bounding_box()
                assert box is not None and box["width"] > 200 and box["height"] > 60
                assert await chart.locator("polygon.band").count() >= 1  # the interval over time
                assert await chart.locator("line.margin").count() == 1
                assert "Regressed." in await errors.locator(".why").inner_text()
                row = page.locator('table.grid tr[data-cohort="input_class=coding"]')
                assert await row.get_attribute("data-state") == "regressed"
                # The screenshot: the grid, then the regressed cohorts with their charts (first in order).
                await page.set_viewport_size({"width": 1400, "height": 1500})
                await page.evaluate("document.querySelector('table.grid').scrollIntoView({block: 'start'})")
                await page.screenshot(path=str(shot), full_page=False)
                # The live page re-reads itself: the regressed cohort stays shown after a refresh.
                await page.wait_for_timeout(6500)
                assert sum(1 for u in requested if u.rstrip("/") == base) >= 2
                assert await coding.get_attribute("data-state") == "regressed"
                assert all(u.startswith(base) for u in requested), requested  # nothing from elsewhere
                await coding.scroll_into_view_if_needed()
                await page.screenshot(path=str(tmp_path / "dashboard-cohort.png"))
        finally:
            await wa.stop()

    asyncio.run(run())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    print(f"dashboard screenshot: {shot}")
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(shot, os.environ[SCREENSHOT_ENV])


def test_the_dashboard_binds_to_loopback_unless_configured() -> None:
    assert WorkerOptions("x:1").web_bind == "127.0.0.1"
    assert Config().worker.web_bind == "127.0.0.1"
