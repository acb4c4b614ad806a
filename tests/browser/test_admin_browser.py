"""An admin in a real browser: creates a project, uploads a GeoTIFF and watches it being cut into tiles,
opens the dashboard and the project, marks a gold tile, makes someone coordinator.

Celery runs eagerly in the tests, so the tiling happens inside the upload request; the page then
polls the layer and finds it ready. Screenshots go to test-artifacts/browser/ (or $TEST_ARTIFACTS).
axe-core checks the managers' pages for WCAG 2.1 A/AA violations on the way.
"""

import random
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from imagery.models import ImageryLayer, Tile
from tagging.classifications import record_classification
from tagging.consensus_store import recompute_project
from tagging.models import Classification, GoldAnswer, Membership, Project
from tests.browser.test_accessibility import audit
from tests.browser.test_volunteer_browser import ARTIFACTS, VIEWPORTS, chromium, demo, sign_in  # noqa: F401 (fixtures)
from tests.rasters import write_geotiff

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("language", ["en", "ar"])
def test_an_admin_creates_a_project_uploads_imagery_and_opens_the_dashboard(
        chromium, live_server, tmp_path, settings, language) -> None:  # noqa: F811
    settings.DEBUG = False
    shots = ARTIFACTS
    shots.mkdir(parents=True, exist_ok=True)
    shot = lambda name: page.screenshot(path=str(shots / f"admin-{language}-{name}.png"), full_page=True)  # noqa: E731
    User = get_user_model()
    User.objects.create_superuser("chief", "chief@example.org", "chief-pass-123")
    User.objects.create_user("helper", password="helper-pass-123")
    # 1000 x 700 px at 0.5 m with 512 px tiles every 448 px: 3 columns, 2 rows.
    tif = write_geotiff(tmp_path / "raqqa-2017-06.tif", width=1000, height=700)
    context = chromium.new_context(locale=language, viewport={"width": 1366, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    base = live_server.url
    violations: dict[str, list[str]] = {}
    sign_in(page, base, "chief", "chief-pass-123")

    # The new project form, reached from the home page.
    page.click("a[href='/projects/new/']")
    page.wait_for_selector("#answers-body tr")
    page.fill("#f-name", "Raqqa 2017")
    assert page.input_value("#f-slug") == "raqqa-2017"  # the short name follows the name
    page.fill("#f-question", "Do you see destroyed buildings?")
    page.fill("#f-instructions", "Mark every collapsed roof.")
    page.fill("#f-redundancy", "3")
    page.select_option("#f-scheduling", "depth_first")
    page.fill("#f-gold", "20")
    page.fill("#f-retire", "95")
    violations["new"] = audit(page)
    shot("1-new-project")
    page.click("#project-form button[type=submit]")
    page.wait_for_url(f"{base}/projects/raqqa-2017/upload/")
    project = Project.objects.get(slug="raqqa-2017")
    assert (project.name, project.redundancy, project.scheduling, project.gold_rate, project.retire_confidence) == (
        "Raqqa 2017", 3, "depth_first", 0.2, 0.95)
    assert project.instructions == "Mark every collapsed roof." and project.status == "draft"
    assert Membership.objects.get(project=project, user__username="chief").role == "manager"

    # The upload: the bytes' progress bar, then the tiling's, polled until the layer is ready.
    page.fill("#u-date", "2017-06-01")
    page.fill("#u-source", "Test scene")
    page.set_input_files("#u-files", str(tif))
    page.click("#upload-form button[type=submit]")
    page.wait_for_function("document.getElementById('tiling-progress').value === 100", timeout=30_000)
    assert page.eval_on_selector("#upload-progress", "e => e.value") == 100
    page.wait_for_selector("#layers td:has-text('Test scene')")
    violations["upload"] = audit(page)
    shot("2-upload-done")
    layer = ImageryLayer.objects.get(project=project)
    assert (layer.status, layer.tile_count) == ("ready", 6)
    assert "6" in page.inner_text("#tiling-progress-text")

    # The dashboard, through the project navigation: figures, charts, tiling at 100%; then open the project.
    page.click(".project-nav a[href='/projects/raqqa-2017/dashboard/']")
    page.wait_for_selector("#dashboard[data-loaded='1']")
    assert page.eval_on_selector("#layers progress", "e => e.value") == 100
    assert page.locator("#votes-chart svg rect.bar").count() == 60
    assert page.locator("#agreement-chart svg rect.bar").count() == 10
    assert page.inner_text("#figures .stat:first-child .value").strip() in ("6", "٦")
    violations["dashboard"] = audit(page)
    shot("3-dashboard")
    page.click("button[data-status='active']")
    page.wait_for_function("document.getElementById('status').className.includes('status-active')")
    assert Project.objects.get(pk=project.pk).status == "active"
    shot("4-dashboard-open")

    # A gold tile: pick the first tile, put a point on it, choose "destroyed", save.
    page.click(".project-nav a[href='/projects/raqqa-2017/gold/']")
    page.wait_for_selector("#thumbs .thumb")
    page.click("#thumbs .thumb >> nth=0")
    page.wait_for_function("document.querySelector('#gold-map img.leaflet-image-layer')?.complete")
    page.wait_for_timeout(200)
    box = page.locator("#gold-map img.leaflet-image-layer").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.5)
    assert page.is_checked("#gold-answer-0")  # a point picks the first answer that means damage
    violations["gold"] = audit(page)
    page.click("#gold-form button[type=submit]")
    page.wait_for_selector("#remove-gold:not([hidden])")
    shot("5-gold-tile")
    tile = Tile.objects.get(grid__project=project, status="gold")
    gold = GoldAnswer.objects.get(tile=tile)
    assert gold.answer == "destroyed" and len(gold.marks) == 1
    assert gold.marks[0][0] == pytest.approx(0.25 * tile.size, abs=3)
    assert gold.marks[0][1] == pytest.approx(0.5 * tile.size, abs=3)

    # Members: make "helper" a coordinator.
    page.click(".project-nav a[href='/projects/raqqa-2017/members/']")
    page.wait_for_selector("#members tr")
    page.fill("#m-username", "helper")
    page.select_option("#m-role", "coordinator")
    page.click("#add-member button[type=submit]")
    page.wait_for_selector("#members th:has-text('helper')")
    violations["members"] = audit(page)
    shot("6-members")
    assert Membership.objects.get(project=project, user__username="helper").role == "coordinator"

    page.click(".project-nav a[href='/projects/raqqa-2017/settings/']")
    page.wait_for_selector("#answers-body tr")
    violations["settings"] = audit(page)
    shot("7-settings")
    context.close()
    assert not errors, errors
    assert violations == {name: [] for name in violations}


@pytest.mark.parametrize("device", ["laptop", "phone"])
def test_a_coordinator_reads_the_dashboard_of_a_project_with_votes(
        chromium, live_server, demo, device) -> None:  # noqa: F811
    """The demo project with a replayed crowd spread over three weeks and a consensus computed from it."""
    project = Project.objects.get(slug="demo")
    User = get_user_model()
    crowd = [User.objects.create_user(f"crowd{i}") for i in range(8)]
    rng = random.Random(4)
    now = timezone.now()
    for tile in Tile.objects.filter(grid__project=project).exclude(status="gold").order_by("pk"):
        for user in rng.sample(crowd, 3):
            answer = rng.choice(["destroyed", "no_damage", "no_damage", "damaged", "cant_tell"])
            vote, _ = record_classification(volunteer=user, tile=tile, answer=answer, marks=[], seconds=12.0,
                                            source="import", imported=True)
            Classification.objects.filter(pk=vote.pk).update(created_at=now - timedelta(days=rng.randint(0, 20)))
    recompute_project(project_id=project.pk)
    coordinator = User.objects.get(username="coordinator")
    coordinator.set_password("coord-pass-123")
    coordinator.save()

    context = chromium.new_context(**VIEWPORTS[device])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, live_server.url, "coordinator", "coord-pass-123")
    page.goto(f"{live_server.url}/projects/demo/dashboard/")
    page.wait_for_selector("#dashboard[data-loaded='1']")
    page.wait_for_function("document.getElementById('consensus-run').textContent.length > 0")
    assert page.locator("#top tr th").count() == 5 and page.locator("#bottom tr th").count() == 3
    assert page.locator("[data-status]").count() == 0  # coordinators do not open or close projects
    nav = page.inner_text(".project-nav")
    assert "Dashboard" in nav and "Settings" not in nav and "Members" not in nav
    page.click("#votes-chart summary")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{device}-with-votes.png"), full_page=True)
    assert audit(page) == []
    context.close()
    assert not errors, errors
