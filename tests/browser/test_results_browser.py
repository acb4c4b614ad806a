"""A volunteer opens the published results of the demo project in a real browser.

The crowd of tests/browser/test_map_browser.py votes on every tile; our volunteer tags two of them,
marking the destroyed buildings on them; the consensus is recomputed and a manager publishes. The
volunteer then sees the imagery, the tiles coloured by the consensus with their own two outlined,
and the confirmed buildings they marked highlighted, in English and Arabic. Screenshots go to
test-artifacts/browser/results-*.png.
"""

import json
import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from pyproj import Transformer

from imagery.models import Tile
from tagging.classifications import MarkInput, record_classification
from tagging.consensus_store import recompute_project
from tagging.models import Building, Classification, Project
from tests.browser.test_accessibility import audit
from tests.browser.test_map_browser import crowd_votes
from tests.browser.test_volunteer_browser import ARTIFACTS, chromium, demo, sign_in  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "volunteer-pass-123"


def tag_two_tiles(project: Project, username: str) -> list[int]:
    """A volunteer answers "destroyed" on the first two tiles with a point on each truly destroyed building."""
    truth = json.loads((settings.DATA_DIR / "demo" / "truth.geojson").read_text())
    to_grid = Transformer.from_crs("EPSG:4326", project.grid.crs, always_xy=True)
    destroyed = [to_grid.transform(*f["geometry"]["coordinates"]) for f in truth["features"]
                 if f["properties"]["destroyed"]]
    after = str(project.layers.order_by("date").last().date)
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    tiles = list(Tile.objects.filter(grid__project=project).exclude(status=Tile.Status.GOLD).order_by("row", "col"))
    mine = []
    for tile in tiles:
        pixel = (tile.maxx - tile.minx) / tile.size
        marks = [MarkInput((x - tile.minx) / pixel, (tile.maxy - y) / pixel, after) for x, y in destroyed
                 if tile.minx + 3 < x < tile.maxx - 3 and tile.miny + 3 < y < tile.maxy - 3]
        if marks:
            record_classification(volunteer=user, tile=tile, answer="destroyed", seconds=15.0, imported=True,
                                  marks=marks)
            mine.append(tile.pk)
        if len(mine) == 2:
            break
    recompute_project(project_id=project.pk)
    return mine


@pytest.fixture
def published(demo):  # noqa: F811
    project = Project.objects.get(slug="demo")
    crowd_votes(project)
    mine = tag_two_tiles(project, "helper-vol")
    project.published_at = timezone.now()
    project.save(update_fields=["published_at"])
    return project, mine


def wait_for_results(page) -> None:
    page.wait_for_function("""() => { const r = document.getElementById("results");
        return r.dataset.loading === "0" && Number(r.dataset.tilesDrawn) > 0
               && Number(r.dataset.buildingsDrawn) > 0; }""", timeout=15_000)
    page.wait_for_function("""() => [...document.querySelectorAll("#results-map img.leaflet-tile")]
                                      .filter(i => i.complete && i.naturalWidth > 1).length >= 1""", timeout=20_000)
    page.wait_for_timeout(400)  # Leaflet's fade-in


@pytest.mark.parametrize("language", ["en", "ar"])
def test_a_volunteer_sees_their_contribution_on_the_results_map(chromium, live_server, published,  # noqa: F811
                                                                language) -> None:
    project, mine = published
    assert len(mine) == 2
    user = get_user_model().objects.get(username="helper-vol")
    my_votes = set(Classification.objects.filter(volunteer=user).values_list("id", flat=True))
    confirmed = {b.pk for b in Building.objects.filter(project=project, confidence__gte=0.5)
                 if my_votes.intersection(b.classification_ids)}
    assert confirmed, "the volunteer's marks are on buildings the consensus confirms"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    context = chromium.new_context(locale=language, viewport={"width": 1366, "height": 900})
    page = context.new_page()
    errors, failed = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    sign_in(page, live_server.url, "helper-vol", PASSWORD)
    page.goto(f"{live_server.url}/projects/demo/results/")
    assert page.get_attribute("html", "dir") == ("rtl" if language == "ar" else "ltr")
    wait_for_results(page)

    root = "#results"
    assert page.get_attribute(root, "data-touch-pan") == "one-finger"  # a mouse drags the map as usual
    assert page.evaluate("ProjectResults.map.dragging.enabled()")
    assert int(page.get_attribute(root, "data-mine-tiles")) == 2
    assert int(page.get_attribute(root, "data-tiles-drawn")) == Tile.objects.filter(
        grid__project=project, consensus__isnull=False).count()
    assert int(page.get_attribute(root, "data-mine-buildings")) == len(confirmed)
    assert int(page.get_attribute(root, "data-buildings-drawn")) == Building.objects.filter(
        project=project, confidence__gte=0.5).count()
    assert page.inner_text("#my-tiles") == "2" and page.inner_text("#my-buildings") == str(len(confirmed))
    status = page.inner_text("#results-status")
    assert status and any(ch.isdigit() for ch in status)
    page.screenshot(path=str(ARTIFACTS / f"results-{language}-1-map.png"), full_page=True)

    # Only mine: the other tiles and buildings step back.
    page.check("#only-mine")
    page.wait_for_function("document.getElementById('results').dataset.tilesDrawn === '2'")
    assert int(page.get_attribute(root, "data-buildings-drawn")) == len(confirmed)
    page.locator("#results-map").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"results-{language}-2-only-mine.png"))

    # A building the volunteer marked says so in its pop-up.
    building = Building.objects.get(pk=min(confirmed))
    at = page.evaluate("""([lat, lon]) => { const p = ProjectResults.map.latLngToContainerPoint([lat, lon]);
        const r = document.getElementById('results-map').getBoundingClientRect();
        return [r.left + p.x, r.top + p.y]; }""", [building.lat, building.lon])
    page.mouse.click(*at)
    page.wait_for_selector(".leaflet-popup .map-popup.building .badge.mine")
    page.wait_for_timeout(400)
    page.screenshot(path=str(ARTIFACTS / f"results-{language}-3-popup.png"))
    page.keyboard.press("Escape")
    # Leaflet fades the pop-up out over 200 ms: an audit in that time reads its half-transparent text as too faint.
    page.wait_for_selector(".leaflet-popup", state="detached")

    assert audit(page) == []
    context.close()
    assert not errors, errors
    assert not failed, failed


def test_a_volunteer_waits_for_the_publication(chromium, live_server, demo) -> None:  # noqa: F811
    project = Project.objects.get(slug="demo")
    crowd_votes(project)
    tag_two_tiles(project, "helper-vol")
    context = chromium.new_context()
    page = context.new_page()
    sign_in(page, live_server.url, "helper-vol", PASSWORD)
    response = page.goto(f"{live_server.url}/projects/demo/results/")
    assert response.status == 403
    assert "not published yet" in page.inner_text("main")
    context.close()


def open_on_a_phone(browser, live_server, language: str):
    """The results page as the helper volunteer sees it on a 390 x 780 touch screen: (context, page, page errors)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(locale=language, viewport={"width": 390, "height": 780}, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, live_server.url, "helper-vol", PASSWORD)
    page.goto(f"{live_server.url}/projects/demo/results/")
    wait_for_results(page)
    return context, page, errors


@pytest.mark.parametrize("language", ["en", "ar"])
def test_the_results_page_fits_a_phone(chromium, live_server, published, language) -> None:  # noqa: F811
    """390 x 780, touch: nothing wider than the screen, the map full width and tall enough to use, the panel
    under it, and the list of buildings readable."""
    context, page, errors = open_on_a_phone(chromium, live_server, language)
    page.screenshot(path=str(ARTIFACTS / f"results-{language}-phone-1-top.png"))
    page.screenshot(path=str(ARTIFACTS / f"results-{language}-phone-2-full.png"), full_page=True)
    page.locator("#results-map").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"results-{language}-phone-3-map.png"))

    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling
    stage = page.locator(".results-stage").bounding_box()
    panel = page.locator(".results-panel").bounding_box()
    assert stage["width"] >= width - 40 and stage["height"] >= 300
    assert panel["y"] >= stage["y"] + stage["height"] - 1  # the panel is under the map, not squeezed beside it
    assert panel["width"] >= width - 40
    for selector in (".project-nav", "#contribution", ".results-table", ".results-table tr >> nth=0"):
        box = page.locator(selector).bounding_box()
        assert box["x"] >= -1 and box["x"] + box["width"] <= width + 1, selector
    # Each date of the "destroyed between" window on one line; coordinates with decimal points, also in Arabic.
    assert page.locator(".results-table bdi.date").count() >= 2
    assert page.evaluate("[...document.querySelectorAll('.results-table bdi.date')]"
                         ".every(d => d.getClientRects().length === 1)")
    link = page.locator(".results-table a").first
    assert re.fullmatch(r"-?\d+\.\d{5}, -?\d+\.\d{5}", link.inner_text())
    assert re.search(r"mlat=-?\d+\.\d{6}&mlon=-?\d+\.\d{6}", link.get_attribute("href"))
    context.close()
    assert not errors, errors


def touches(cdp, kind: str, points: list[tuple[float, float]]) -> None:
    """Real touch input (the browser's own gestures: it scrolls where CSS touch-action lets it)."""
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
        {"x": x, "y": y, "id": i, "radiusX": 4, "radiusY": 4, "force": 1} for i, (x, y) in enumerate(points)]})


def swipe(page, cdp, fingers: list[tuple[float, float]], dx: float, dy: float, *, before_lifting=None) -> None:
    touches(cdp, "touchStart", fingers)
    for step in range(1, 13):
        page.wait_for_timeout(16)
        touches(cdp, "touchMove", [(x + dx * step / 12, y + dy * step / 12) for x, y in fingers])
    if before_lifting:
        before_lifting()
    touches(cdp, "touchEnd", [])
    page.wait_for_timeout(700)  # the scroll's fling, Leaflet's zoom animation


def test_on_a_phone_one_finger_scrolls_the_page_and_two_fingers_move_the_map(chromium, live_server,  # noqa: F811
                                                                             published) -> None:
    """The map is part of a longer page on a phone (not full screen): a one-finger drag on it scrolls the page and
    says how to move the map; two fingers move it."""
    context, page, errors = open_on_a_phone(chromium, live_server, "en")
    assert page.get_attribute("#results", "data-touch-pan") == "two-fingers"
    assert not page.evaluate("ProjectResults.map.dragging.enabled()")
    assert page.evaluate("ProjectResults.map.touchZoom.enabled()")
    stage = page.locator(".results-stage").bounding_box()
    assert stage["height"] < page.evaluate("window.innerHeight") * 0.8  # not full screen: the page goes on below
    page.evaluate("window.scrollTo(0, document.querySelector('.results-stage').getBoundingClientRect().top"
                  " + window.scrollY - 40)")
    page.wait_for_timeout(200)
    cdp = context.new_cdp_session(page)
    centre = "(() => { const m = ProjectResults.map, c = m.getCenter(); return [c.lat, c.lng, m.getZoom()]; })()"
    box = page.locator("#results-map").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.75

    # One finger, upwards: the page scrolls down, the map stays where it was, and the hint shows.
    top, before = page.evaluate("window.scrollY"), page.evaluate(centre)
    hint_seen = []
    swipe(page, cdp, [(x, y)], 0, -220, before_lifting=lambda: (
        hint_seen.append(page.get_attribute("#results", "data-touch-hint")),
        page.screenshot(path=str(ARTIFACTS / "results-en-phone-4-one-finger.png"))))
    assert page.evaluate("window.scrollY") > top + 100
    assert page.evaluate(centre) == before
    assert hint_seen == ["1"] and page.locator("#results-touch-hint").inner_text() == "Use two fingers to move the map"
    page.wait_for_function("document.getElementById('results').dataset.touchHint === '0'", timeout=3000)

    # Two fingers: the map moves with them, the page does not scroll.
    page.evaluate("window.scrollTo(0, document.querySelector('.results-stage').getBoundingClientRect().top"
                  " + window.scrollY - 40)")
    page.wait_for_timeout(200)
    box = page.locator("#results-map").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    top, before = page.evaluate("window.scrollY"), page.evaluate(centre)
    swipe(page, cdp, [(x - 50, y), (x + 50, y)], -80, -120)
    after = page.evaluate(centre)
    assert abs(page.evaluate("window.scrollY") - top) <= 1
    assert after[2] == before[2] and after[:2] != before[:2]
    moved = page.evaluate("""([lat, lng]) => { const m = ProjectResults.map;
        const p = m.latLngToContainerPoint([lat, lng]), c = m.getSize().divideBy(2);
        return [p.x - c.x, p.y - c.y]; }""", before[:2])
    assert moved == [pytest.approx(-80, abs=6), pytest.approx(-120, abs=6)]  # the old centre went with the fingers
    assert page.get_attribute("#results", "data-touch-hint") in (None, "0")
    page.screenshot(path=str(ARTIFACTS / "results-en-phone-5-two-fingers.png"))
    context.close()
    assert not errors, errors
