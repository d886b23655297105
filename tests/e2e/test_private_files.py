"""What the daemon keeps on disk is its user's alone: the data folder 0700, the database (and its -wal and -shm),
the images and the uploads 0600 — whatever the umask, wherever the control socket lives."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatgpt_wecom.config import Settings
from tests.daemon_runner import DaemonRunner, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask of a login shell: new files 0644, new folders 0755 unless the daemon says otherwise."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def database_files(settings: Settings) -> list[Path]:
    db = settings.database_path
    return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]


async def test_a_new_data_folder_is_private_with_the_socket_elsewhere(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, umask_022: None
) -> None:
    settings = make_settings(tmp_path, wecom, model)
    assert settings.data_dir not in settings.socket_path.parents  # the socket's 0700 folder is not data_dir
    async with DaemonRunner(settings) as daemon:
        await daemon.say("u1", "你好")
        await daemon.say("u1", "#图片 一只橘猫")
        assert wecom.requests_to("/cgi-bin/media/upload"), "the image was drawn and sent"
        data = settings.data_dir
        assert mode(data) == 0o700
        for path in database_files(settings):  # -wal and -shm exist while the daemon runs
            assert path.exists() and mode(path) == 0o600, (path, oct(mode(path)))
        images = data / "images"
        assert mode(images) == 0o700
        [image] = list(images.iterdir())
        assert mode(image) == 0o600
        assert mode(data / "history-link.key") == 0o600


async def test_loose_modes_left_by_an_older_version_are_tightened_at_start_and_logged(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, umask_022: None, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonRunner(settings) as daemon:
        await daemon.say("u1", "#图片 一只橘猫")
    data, db = settings.data_dir, settings.database_path
    [image] = list((data / "images").iterdir())
    uploads = data / "uploads"
    uploads.mkdir()
    (uploads / "7.jpg").write_bytes(b"\xff\xd8\xff")
    for path in (data, data / "images", uploads):
        path.chmod(0o755)
    for path in (db, image, uploads / "7.jpg", data / "history-link.key"):
        path.chmod(0o644)

    caplog.set_level(logging.INFO, logger="chatgpt_wecom")
    async with DaemonRunner(settings):
        for path in (data, data / "images", uploads):
            assert mode(path) == 0o700, path
        for path in (*database_files(settings), image, uploads / "7.jpg", data / "history-link.key"):
            assert mode(path) == 0o600, path
    said = [r.getMessage() for r in caplog.records if "tightened" in r.getMessage()]
    assert len(said) == 1, said
    line = said[0]
    assert f"{data} 0755→0700" in line and f"{db} 0644→0600" in line
    assert f"{data / 'images'} 0755→0700 (and 1 file in it 0600)" in line
    assert f"{data / 'history-link.key'} 0644→0600" in line
