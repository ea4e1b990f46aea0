"""The ``bridge`` config section: documented defaults, typed settings, and errors that name the file,
line and field, like every other section."""

from __future__ import annotations

import pytest

from rollguard.settings.bridge import parse_bridge
from rollguard.settings.config import Config, ConfigError, parse_config


def test_without_config_the_bridge_re_posts_every_minute_and_links_the_local_worker() -> None:
    am = Config().bridge.alertmanager
    assert (am.worker_url, am.repost_interval_s, am.retry_initial_s, am.retry_max_s) == (
        "http://127.0.0.1:6066",
        60.0,
        0.5,
        30.0,
    )
    assert (am.max_batch, am.group_id, am.timeout_s) == (500, "rollguard-bridge-alertmanager", 5.0)
    assert parse_config("bridge:\n").bridge == Config().bridge


def test_the_section_parses_into_typed_settings() -> None:
    cfg = parse_config(
        "bridge:\n"
        "  alertmanager:\n"
        "    worker_url: http://rollguard-worker:6066/\n"
        "    repost_interval_s: 20\n"
        "    retry_max_s: 5\n"
        "    max_batch: 100\n"
        "    group_id: bridge-eu\n"
    )
    am = cfg.bridge.alertmanager
    assert am.worker_url == "http://rollguard-worker:6066"  # no trailing slash: URLs are joined
    assert (am.repost_interval_s, am.retry_max_s, am.max_batch, am.group_id) == (20.0, 5.0, 100, "bridge-eu")
    assert isinstance(am.max_batch, int)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            "bridge:\n  pagerduty: {}\n",
            "cfg.yml:2: bridge.pagerduty",
            "unknown setting (expected one of: alertmanager)",
        ),
        ("bridge: [1]\n", "cfg.yml:1: bridge", "must be a mapping"),
        (
            "bridge:\n  alertmanager:\n    repost_s: 5\n",
            "cfg.yml:3: bridge.alertmanager.repost_s",
            "unknown setting",
        ),
        (
            "bridge:\n  alertmanager:\n    repost_interval_s: 0\n",
            "cfg.yml:3: bridge.alertmanager.repost_interval_s",
            "must be positive",
        ),
        (
            "bridge:\n  alertmanager:\n    max_batch: 2.5\n",
            "cfg.yml:3: bridge.alertmanager.max_batch",
            "whole number",
        ),
        (
            "bridge:\n  alertmanager:\n    timeout_s: fast\n",
            "cfg.yml:3: bridge.alertmanager.timeout_s",
            "must be a number",
        ),
        (
            "bridge:\n  alertmanager:\n    worker_url: worker:6066\n",
            "cfg.yml:3: bridge.alertmanager.worker_url",
            "http(s) URL",
        ),
        (
            "bridge:\n  alertmanager:\n    group_id: ''\n",
            "cfg.yml:3: bridge.alertmanager.group_id",
            "non-empty string",
        ),
        (
            "bridge:\n  alertmanager:\n    retry_initial_s: 2\n    retry_max_s: 1\n",
            "cfg.yml:4: bridge.alertmanager.retry_max_s",
            "must be at least retry_initial_s (2)",
        ),
    ],
)
def test_a_bad_bridge_section_fails_naming_file_line_and_field(text: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(text, source="cfg.yml")
    assert str(exc.value).startswith(where + ": ")
    assert message in str(exc.value)


def test_parse_bridge_takes_any_locator() -> None:
    class Loc:
        def error(self, path: str, message: str) -> Exception:
            return ValueError(f"{path}: {message}")

    with pytest.raises(ValueError, match=r"^bridge\.alertmanager\.max_batch: must be positive"):
        parse_bridge({"alertmanager": {"max_batch": 0}}, Loc())


def test_the_readme_and_module_examples_are_valid_bridge_sections() -> None:
    import re

    import rollguard.settings.bridge as module
    from readme import README

    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S) if "bridge:" in b]
    assert len(blocks) == 1
    example = module.__doc__.split("Example::", 1)[1] if module.__doc__ else ""
    for text in (blocks[0], "\n".join(line[4:] for line in example.splitlines())):
        am = parse_config(text, source="example").bridge.alertmanager
        assert am.worker_url == "http://rollguard-worker:6066"
        assert am.repost_interval_s == 60.0
