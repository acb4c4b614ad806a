"""ingest_imagery from the command line, as an admin with files of many GB would use it."""

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from imagery import jobs
from imagery.models import ImageryLayer
from tests.imagery.helpers import make_project
from tests.rasters import write_geotiff

pytestmark = pytest.mark.django_db(transaction=True)  # the command's own commits run its on_commit hooks


def test_ingest_imagery_makes_a_mosaic_layer_and_waits_for_it(tmp_path: Path, capsys) -> None:
    make_project()
    west = write_geotiff(tmp_path / "west.tif", width=500, height=600)
    east = write_geotiff(tmp_path / "east.tif", width=500, height=600, origin=(500_250.0, 3_980_000.0))
    call_command("ingest_imagery", "raqqa", str(west), str(east), "--date", "2017-06-01", "--wait",
                 "--source", "Pléiades")
    layer = ImageryLayer.objects.get()
    assert (layer.width, layer.height, layer.files.count(), layer.source) == (1000, 600, 2, "Pléiades")
    assert layer.status == "ready" and layer.tile_count == 6  # 3 x 2 cells
    out = capsys.readouterr().out
    assert f"Layer {layer.pk}: ready, 6 tiles." in out


def test_ingest_imagery_exits_non_zero_when_the_layer_fails(tmp_path: Path, monkeypatch, settings) -> None:
    make_project()
    settings.TILING_MAX_ATTEMPTS = 1
    monkeypatch.setattr(jobs, "cut_chunk", lambda **_: (_ for _ in ()).throw(OSError("unreadable block")))
    with pytest.raises(CommandError, match="failed 1 times: OSError: unreadable block"):
        call_command("ingest_imagery", "raqqa", str(write_geotiff(tmp_path / "s.tif")), "--date", "2017-06-01",
                     "--wait", "--timeout", "30")
    assert ImageryLayer.objects.get().status == "failed"


@pytest.mark.parametrize(("args", "message"), [
    (["nowhere", "x.tif", "--date", "2017-01-01"], "no project 'nowhere'"),
    (["raqqa", "missing.tif", "--date", "2017-01-01"], "no such file"),
])
def test_ingest_imagery_reports_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    make_project()
    with pytest.raises(CommandError, match=message):
        call_command("ingest_imagery", *args)
    assert not ImageryLayer.objects.exists()
