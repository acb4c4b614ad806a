"""The embedded broker writes each message whole before a consumer can see it."""

import json
from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection

from config.broker import Transport


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, str]:
    queue = tmp_path / "queue"
    queue.mkdir()
    return {"data_folder_in": str(queue), "data_folder_out": str(queue), "store_processed": False}


def test_a_message_appears_under_its_final_name_only_when_complete(folders) -> None:
    with Connection(transport=Transport, transport_options=folders) as conn:
        channel = conn.default_channel
        channel._put("jobs", {"body": "x" * 100_000})
        names = [p.name for p in Path(folders["data_folder_in"]).iterdir()]
        assert len(names) == 1 and names[0].endswith(".jobs.msg") and not names[0].endswith(".part")
        assert json.loads(Path(folders["data_folder_in"], names[0]).read_text())["body"] == "x" * 100_000
        assert channel._get("jobs") == {"body": "x" * 100_000}


def test_no_message_file_is_visible_under_its_final_name_while_being_written(folders, monkeypatch) -> None:
    import kombu.transport.filesystem
    from kombu.utils.json import dumps

    import config.broker

    seen: list[list[str]] = []

    def spying_dumps(payload):  # runs between creating the file and writing its bytes
        seen.append([p.name for p in Path(folders["data_folder_in"]).iterdir()])
        return dumps(payload)

    monkeypatch.setattr(config.broker, "dumps", spying_dumps)
    monkeypatch.setattr(kombu.transport.filesystem, "dumps", spying_dumps)  # if _put ever falls back to kombu's
    with Connection(transport=Transport, transport_options=folders) as conn:
        conn.default_channel._put("jobs", {"body": "x"})
    assert seen and not any(name.endswith(".jobs.msg") for names in seen for name in names), seen


def test_a_message_still_being_written_is_not_taken(folders) -> None:
    # What a consumer sees mid-write: the partial file, under the name kombu's reader ignores.
    Path(folders["data_folder_in"], "123_abc.jobs.msg.part").write_bytes(b'{"body": "hal')
    with Connection(transport=Transport, transport_options=folders) as conn:
        with pytest.raises(Empty):
            conn.default_channel._get("jobs")
    assert Path(folders["data_folder_in"], "123_abc.jobs.msg.part").exists()


def test_the_embedded_default_uses_it(settings) -> None:
    from config.celery import app

    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        pytest.skip("this run uses a server broker (CELERY_BROKER_URL); the embedded run checks this")
    assert app.connection_for_write().transport_cls == "config.broker:Transport"
