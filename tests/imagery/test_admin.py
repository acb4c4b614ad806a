"""The admin's imagery upload page goes through the same validation and ingest as the API."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from imagery.errors import ImageryError
from imagery.models import ImageryLayer
from imagery.validation import SourceInfo, _check_header
from tests.imagery.helpers import make_project
from tests.rasters import write_geotiff

pytestmark = pytest.mark.django_db


def test_an_admin_uploads_a_mosaic_from_the_admin_page(client, admin_user, tmp_path,
                                                       django_capture_on_commit_callbacks) -> None:
    project = make_project()
    client.force_login(admin_user)
    page = client.get("/admin/imagery/imagerylayer/add/")
    assert page.status_code == 200 and b'type="file"' in page.content and b"multiple" in page.content
    files = [SimpleUploadedFile(name, write_geotiff(tmp_path / name, origin=origin).read_bytes())
             for name, origin in (("a.tif", (500_000.0, 3_980_000.0)), ("b.tif", (500_300.0, 3_980_000.0)))]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/imagery/imagerylayer/add/",
                               {"project": project.pk, "date": "2017-06-01", "source": "admin", "files": files})
    layer = ImageryLayer.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/imagerylayer/{layer.pk}/change/")
    layer.refresh_from_db()
    assert (layer.files.count(), layer.width, layer.status) == (2, 1200, "ready")  # two 600 px scenes side by side
    detail = client.get(response["Location"])
    assert b"ready" in detail.content.lower() and b"sha256" in detail.content.lower()


def test_the_admin_page_shows_why_a_file_is_refused(client, admin_user) -> None:
    project = make_project()
    client.force_login(admin_user)
    response = client.post("/admin/imagery/imagerylayer/add/", {
        "project": project.pk, "date": "2017-06-01", "files": [SimpleUploadedFile("x.tif", b"not a tiff at all")]})
    assert response.status_code == 200
    assert b"not a readable GeoTIFF" in response.content
    assert not ImageryLayer.objects.exists()


def test_a_raster_without_bands_is_refused() -> None:
    # GDAL cannot even write a zero-band GeoTIFF; the check still guards what a reader reports.
    info = SourceInfo(path=__import__("pathlib").Path("x.tif"), crs_wkt="EPSG:32637",
                      transform=(0.5, 0.0, 0.0, 0.0, -0.5, 0.0), width=10, height=10, count=0, dtype="uint8",
                      nodata=None, colorinterp=(), bounds=(0, 0, 5, 5), resolution=(0.5, 0.5), is_tiled=False,
                      is_geographic=False)
    with pytest.raises(ImageryError, match="no bands"):
        _check_header(info, "x.tif", 1000, max_pixels=10**9, max_bands=32, driver="GTiff")
