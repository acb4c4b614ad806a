"""Tiles in S3-compatible object storage (moto stands in for the bucket; no network)."""

from datetime import date

import boto3
import pytest
from django.core.files.storage import storages
from moto import mock_aws
from rest_framework.test import APIClient

from imagery.ingest import create_layer, stage_path
from imagery.models import TileImage
from tests.imagery.helpers import make_project
from tests.rasters import write_geotiff

pytestmark = pytest.mark.django_db


def test_tiles_go_to_the_bucket_and_are_served_by_signed_redirects(settings, tmp_path, admin_user, monkeypatch,
                                                                  django_capture_on_commit_callbacks) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="tiles")
        settings.STORAGES = {**settings.STORAGES, "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": "tiles", "region_name": "us-east-1", "file_overwrite": True}}}
        project = make_project()
        with django_capture_on_commit_callbacks(execute=True):
            layer = create_layer(project=project, date=date(2017, 6, 1),
                                 staged=[stage_path(write_geotiff(tmp_path / "s.tif"))])
        layer.refresh_from_db()
        assert layer.status == "ready" and layer.tile_count == 2
        listed = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket="tiles")["Contents"]
        assert sorted(o["Key"] for o in listed) == sorted(TileImage.objects.values_list("key", flat=True))
        image = TileImage.objects.first()
        assert storages["default"].size(image.key) == image.size_bytes
        api = APIClient()
        api.force_authenticate(admin_user)
        response = api.get(f"/api/v1/tiles/{image.tile_id}/images/{image.layer_id}/")
        assert response.status_code == 302
        assert image.key in response["Location"] and "Signature" in response["Location"]
