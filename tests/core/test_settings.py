"""Settings: every ``CUMULO_*`` variable is read by ``Settings.load``, once, and checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from cumulo.core.settings import Settings


def test_defaults_without_variables(tmp_path: Path) -> None:
    settings = Settings.load(home=tmp_path, environ={})
    assert settings.lease_seconds == 15.0
    assert settings.delivery_seconds == 300.0
    assert settings.snapshot_max_mb == 300.0
    assert settings.snapshot_max_bytes == 300 * 1024 * 1024
    assert settings.env_cache is None and settings.env_cache_dir == tmp_path / "envs"
    assert settings.serving_preload is True
    assert settings.max_request_bytes == 64 * 1024 * 1024


def test_each_variable_is_read(tmp_path: Path) -> None:
    environ = {
        "CUMULO_LEASE_SECONDS": "1.5",
        "CUMULO_DELIVERY_SECONDS": "7",
        "CUMULO_SNAPSHOT_MAX_MB": "0.5",
        "CUMULO_ENV_CACHE": str(tmp_path / "cache"),
        "CUMULO_SERVING_PRELOAD": "0",
        "CUMULO_MAX_REQUEST_BYTES": "1234",
    }
    settings = Settings.load(home=tmp_path, environ=environ)
    assert settings.lease_seconds == 1.5
    assert settings.delivery_seconds == 7.0
    assert settings.snapshot_max_bytes == 512 * 1024
    assert settings.env_cache_dir == tmp_path / "cache"
    assert settings.serving_preload is False
    assert settings.max_request_bytes == 1234


def test_explicit_values_win_over_variables(tmp_path: Path) -> None:
    environ = {"CUMULO_LEASE_SECONDS": "1.5", "CUMULO_SERVING_PRELOAD": "0"}
    settings = Settings.load(
        home=tmp_path, environ=environ, lease_seconds=4.0, serving_preload=True
    )
    assert settings.lease_seconds == 4.0 and settings.serving_preload is True


@pytest.mark.parametrize("text", ["1", "true", "yes", "on"])
def test_preload_stays_on_unless_turned_off(tmp_path: Path, text: str) -> None:
    environ = {"CUMULO_SERVING_PRELOAD": text}
    assert Settings.load(home=tmp_path, environ=environ).serving_preload is True
    for off in ("0", "false", "No", "OFF"):
        environ = {"CUMULO_SERVING_PRELOAD": off}
        assert Settings.load(home=tmp_path, environ=environ).serving_preload is False


@pytest.mark.parametrize(
    "variable", ["CUMULO_LEASE_SECONDS", "CUMULO_DELIVERY_SECONDS", "CUMULO_SNAPSHOT_MAX_MB"]
)
@pytest.mark.parametrize("text", ["0", "-1", "soon", "nan", "inf"])
def test_numbers_above_zero_are_checked(tmp_path: Path, variable: str, text: str) -> None:
    with pytest.raises(ValueError, match=f"{variable} must be a number above 0"):
        Settings.load(home=tmp_path, environ={variable: text})


def test_whole_numbers_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CUMULO_MAX_REQUEST_BYTES must be a whole number"):
        Settings.load(home=tmp_path, environ={"CUMULO_MAX_REQUEST_BYTES": "1.5"})
