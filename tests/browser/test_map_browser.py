"""A coordinator opens the consensus map of the demo project in a real browser.

Five volunteers' votes (with points on the truly destroyed buildings, one volunteer careless) are
recorded and the consensus recomputed; then the coordinator sees the imagery, the coloured tiles
and the buildings, filters, opens pop-ups, compares the two dates with the swipe, in English and
Arabic. Screenshots go to test-artifacts/browser/map-*.png.
"""

import json

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from pyproj import Transformer

from imagery.models import Tile
from tagging.classifications import MarkInput, record_classification
from tagging.consensus_store import recompute_project
from tagging.map_api import contested_q
from tagging.models import Building, Membership, Project, TileConsensus
from tagging.reviews import create_review
from tests.browser.test_accessibility import audit
from tests.browser.test_volunteer_browser import ARTIFACTS, chromium, demo, sign_in  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "coordinator-pass-123"


def crowd_votes(project: Project) -> None:
    """Five volunteers answer every non-gold tile, with points on the scene's truly destroyed buildings.

    Tiles take turns: all agree it is destroyed; three say no damage against two (contested); four say
    damaged and one destroyed; all but a careless one (can't tell) say destroyed.
    """
    truth = json.loads((settings.DATA_DIR / "demo" / "truth.geojson").read_text())
    to_grid = Transformer.from_crs("EPSG:4326", project.grid.crs, always_xy=True)
    destroyed = [to_grid.transform(*f["geometry"]["coordinates"]) for f in truth["features"]
                 if f["properties"]["destroyed"]]
    after = str(project.layers.order_by("date").last().date)
    users = [get_user_model().objects.create_user(f"crowd-{i}") for i in range(5)]
    turns = [["destroyed"] * 5, ["no_damage"] * 3 + ["destroyed"] * 2, ["damaged"] * 4 + ["destroyed"],
             ["destroyed"] * 4 + ["cant_tell"]]
    for n, tile in enumerate(Tile.objects.filter(grid__project=project).exclude(status=Tile.Status.GOLD)
                             .order_by("row", "col")):
        pixel = (tile.maxx - tile.minx) / tile.size
        marks = [MarkInput((x - tile.minx) / pixel, (tile.maxy - y) / pixel, after) for x, y in destroyed
                 if tile.minx + 3 < x < tile.maxx - 3 and tile.miny + 3 < y < tile.maxy - 3]
        for user, answer in zip(users, turns[n % len(turns)]):
            record_classification(volunteer=user, tile=tile, answer=answer, seconds=12.0, imported=True,
                                  marks=marks if answer in ("destroyed", "damaged") else [])
    recompute_project(project_id=project.pk)


def wait_for_overlays(page, previous: str | None = None) -> int:
    """Wait until no overlay request is pending (and the tile count changed, when told the old one)."""
    page.wait_for_function(
        """previous => { const r = document.getElementById("consensus-map");
             return r.dataset.loading === "0" && Number(r.dataset.tilesDrawn) > 0
                    && (previous === null || r.dataset.tilesDrawn !== previous); }""", arg=previous, timeout=15_000)
    return int(page.get_attribute("#consensus-map", "data-tiles-drawn"))


def on_page(page, lat: float, lon: float) -> tuple[float, float]:
    """Where a ground point is on the page, in CSS pixels."""
    return tuple(page.evaluate("([lat, lon]) => { const p = ConsensusMap.map.latLngToContainerPoint([lat, lon]);"
                               " const r = document.getElementById('map').getBoundingClientRect();"
                               " return [r.left + p.x, r.top + p.y]; }", [lat, lon]))


def wait_for_imagery(page) -> None:
    page.wait_for_function("""() => [...document.querySelectorAll("#map img.leaflet-tile")]
                                      .filter(i => i.complete && i.naturalWidth > 1).length >= 2""", timeout=20_000)
    page.wait_for_timeout(400)  # Leaflet's fade-in


@pytest.fixture
def coordinated(demo):  # noqa: F811
    project = Project.objects.get(slug="demo")
    crowd_votes(project)
    user = get_user_model().objects.get(username="coordinator")
    user.set_password(PASSWORD)
    user.save()
    assert Membership.objects.filter(project=project, user=user, role=Membership.Role.COORDINATOR).exists()
    return project


@pytest.mark.parametrize("language", ["en", "ar"])
def test_a_coordinator_reads_the_consensus_map(chromium, live_server, coordinated, language) -> None:  # noqa: F811
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = lambda name: page.screenshot(path=str(ARTIFACTS / f"map-{language}-{name}.png"))  # noqa: E731
    labels = TileConsensus.objects.filter(project=coordinated)
    assert labels.filter(label="destroyed").exists() and labels.exclude(label="destroyed").exists()
    buildings = Building.objects.filter(project=coordinated, confidence__gte=0.5)
    assert buildings.exists()

    context = chromium.new_context(locale=language, viewport={"width": 1366, "height": 800})
    page = context.new_page()
    errors, failed = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    sign_in(page, live_server.url, "coordinator", PASSWORD)
    page.goto(f"{live_server.url}/projects/demo/map/")
    assert page.get_attribute("html", "dir") == ("rtl" if language == "ar" else "ltr")

    everything = wait_for_overlays(page)
    page.wait_for_function("Number(document.getElementById('consensus-map').dataset.buildingsDrawn) > 0")
    wait_for_imagery(page)
    assert everything == Tile.objects.filter(grid__project=coordinated).count()
    assert int(page.get_attribute("#consensus-map", "data-buildings-drawn")) == buildings.count()
    assert page.get_attribute("#consensus-map", "data-review-url") == "", "the review actions' hook is there"
    shot("1-answers")

    # Filters change what is drawn, to exactly what the database says.
    page.select_option("#filter-answer", "destroyed")
    destroyed = wait_for_overlays(page, str(everything))
    assert destroyed == labels.filter(label="destroyed").count() < everything
    shot("2-destroyed-only")
    page.select_option("#filter-answer", "")
    wait_for_overlays(page, str(destroyed))
    # None may be contested (no count to wait for): wait for the filtered request itself, not a timer (the page
    # debounces its reloads, so a fixed pause read the previous count on a slow CI run).
    with page.expect_response(lambda r: "/map/tiles.geojson" in r.url and "contested=1" in r.url):
        page.check("#filter-contested")
    page.wait_for_function("document.getElementById('consensus-map').dataset.loading === '0'")
    contested = int(page.get_attribute("#consensus-map", "data-tiles-drawn"))
    assert contested == labels.filter(contested_q()).count()
    page.uncheck("#filter-contested")
    wait_for_overlays(page)

    # A building's pop-up: its evidence and the link to the votes behind it.
    surest = buildings.filter(is_gold=False).order_by("-confidence").first()
    page.mouse.click(*on_page(page, surest.lat, surest.lon))
    page.wait_for_selector(".leaflet-popup .map-popup")
    link = page.locator(".leaflet-popup .map-popup a")
    assert link.first.get_attribute("href") == f"/api/v1/buildings/{surest.pk}/classifications/"
    page.wait_for_timeout(400)  # the pop-up fades in
    shot("3-building-popup")
    page.keyboard.press("Escape")
    page.wait_for_selector(".leaflet-popup", state="detached")  # it fades out before it lets clicks through

    # A tile's pop-up, clicked where no building is: its consensus and the link to who said what.
    grid = coordinated.grid
    half = (grid.tile_size - grid.overlap) * grid.pixel_size / 2  # the middle of the part a tile owns, metres
    to_wgs84 = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    inner = Tile.objects.filter(grid=grid, col__lt=grid.spec().cols - 1, row__lt=grid.spec().rows - 1)  # whole parts
    middles = {t: to_wgs84.transform(t.minx + half, t.maxy - half) for t in inner}
    clear = max(middles, key=lambda t: min((middles[t][0] - b.lon) ** 2 + (middles[t][1] - b.lat) ** 2
                                           for b in buildings))
    page.mouse.click(*on_page(page, middles[clear][1], middles[clear][0]))
    page.wait_for_selector(".leaflet-popup .map-popup.tile")
    href = page.locator(".leaflet-popup .map-popup.tile a").first.get_attribute("href")
    assert href == f"/api/v1/tiles/{clear.pk}/classifications/"
    assert page.is_visible(".leaflet-popup .map-popup.tile section.review")  # "not reviewed yet"
    page.keyboard.press("Escape")
    page.wait_for_selector(".leaflet-popup", state="detached")

    # A coordinator relabels that tile: the map shows the reviewed label, the filter keeps it alone, and its
    # pop-up says who decided what, with the link to the review page.
    crowd = labels.get(tile=clear).label
    relabel = next(key for key in coordinated.answer_keys if key != crowd)
    create_review(project=coordinated, reviewer=get_user_model().objects.get(username="coordinator"),
                  action="relabel", tile=clear, label=relabel, note="checked on the ground")
    page.select_option("#filter-reviewed", "yes")
    assert wait_for_overlays(page, str(everything)) == 1
    page.mouse.click(*on_page(page, middles[clear][1], middles[clear][0]))
    page.wait_for_selector(".leaflet-popup .map-popup.tile section.review a.open-review")
    review = page.locator(".leaflet-popup .map-popup.tile section.review")
    assert review.locator("a.open-review").get_attribute("href") == f"/projects/demo/review/?tile={clear.pk}"
    assert "coordinator" in review.inner_text() and "checked on the ground" in review.inner_text()
    page.wait_for_timeout(400)
    shot("3b-reviewed-tile-popup")
    page.keyboard.press("Escape")
    page.wait_for_selector(".leaflet-popup", state="detached")
    page.select_option("#filter-reviewed", "")
    assert wait_for_overlays(page, "1") == everything

    # Colour by confidence: the legend follows.
    page.select_option("#color-by", "confidence")
    page.wait_for_function("document.getElementById('consensus-map').dataset.loading === '0'")
    assert page.locator("#map-legend .ramp").count() >= 2

    # Compare the two dates with the swipe.
    page.select_option("#map-compare", "0")
    assert page.is_visible("#map-swipe") and page.is_visible("#swipe-line")
    page.fill("#map-swipe", "35")
    page.dispatch_event("#map-swipe", "input")
    page.wait_for_timeout(600)
    clip = page.evaluate("document.querySelectorAll('#map .leaflet-layer')[1].style.clip")
    assert clip.startswith("rect("), clip
    assert page.inner_text("#chip-left") != page.inner_text("#chip-right")
    shot("4-swipe-confidence")
    page.locator("#map-legend").scroll_into_view_if_needed()
    shot("6-legend")

    # Zoomed out, tiles come grouped into cells; a cell's pop-up offers to zoom in.
    page.select_option("#map-compare", "")
    page.select_option("#color-by", "answer")
    page.evaluate("ConsensusMap.map.setZoom(13, {animate: false})")
    page.wait_for_function("""() => { const r = document.getElementById("consensus-map");
        return r.dataset.loading === "0" && r.dataset.tilesAggregated === "true"; }""", timeout=15_000)
    cells = int(page.get_attribute("#consensus-map", "data-tiles-drawn"))
    assert 1 <= cells < everything
    page.uncheck("#show-buildings")  # so that the click lands on a cell, not on a building
    page.wait_for_function("document.getElementById('consensus-map').dataset.buildingsDrawn === '0'")
    centre = page.evaluate("""() => { const r = document.getElementById('map').getBoundingClientRect();
        const c = ConsensusMap.map.latLngToContainerPoint(ConsensusMap.map.getCenter());
        return [r.left + c.x, r.top + c.y]; }""")
    page.mouse.click(centre[0] - 4, centre[1] - 4)  # inside the north-west cell, off the corner the cells share
    page.wait_for_selector(".leaflet-popup .map-popup.cell button.zoom-in")
    page.wait_for_timeout(400)
    shot("5-grouped-cells")
    # Reviews reach grouped cells too: the cell says how many of its tiles a review decides.
    assert page.evaluate("gettext('Reviewed tiles')") in page.inner_text(".leaflet-popup .map-popup.cell")
    page.click(".leaflet-popup .map-popup.cell button.zoom-in")
    page.wait_for_function("ConsensusMap.map.getZoom() > 13")

    # The controls are labelled and reachable: axe finds no WCAG A/AA violation.
    assert audit(page) == []
    context.close()
    assert not errors, errors
    assert not failed, failed


def test_a_volunteer_may_not_open_the_map(chromium, live_server, coordinated) -> None:  # noqa: F811
    get_user_model().objects.create_user("reader", password="reader-pass-123")
    context = chromium.new_context()
    page = context.new_page()
    sign_in(page, live_server.url, "reader", "reader-pass-123")
    response = page.goto(f"{live_server.url}/projects/demo/map/")
    assert response.status == 403
    context.close()


def test_on_a_phone_the_controls_fold_under_the_map(chromium, live_server, coordinated) -> None:  # noqa: F811
    context = chromium.new_context(viewport={"width": 390, "height": 780}, is_mobile=True, has_touch=True,
                                   device_scale_factor=2)
    page = context.new_page()
    sign_in(page, live_server.url, "coordinator", PASSWORD)
    page.goto(f"{live_server.url}/projects/demo/map/")
    wait_for_overlays(page)
    assert page.get_attribute("#panel-toggle", "aria-expanded") == "false"
    page.screenshot(path=str(ARTIFACTS / "map-phone-1-folded.png"))
    page.locator("#panel-toggle").tap()
    assert page.is_visible("#filter-answer")
    page.screenshot(path=str(ARTIFACTS / "map-phone-2-controls.png"))
    context.close()


UNAVAILABLE = "The database is restarting."
SETTLED = "() => document.getElementById('consensus-map').dataset.loading === '0'"


def map_with_unavailable(browser, base: str, pattern: str):  # noqa: ANN201 (a Playwright context and page)
    """The coordinator's map, open once its status line says something, with the overlays matching pattern
    answering 503 with the API's error body, as while the database restarts."""
    context = browser.new_context(viewport={"width": 1366, "height": 800})
    page = context.new_page()
    sign_in(page, base, "coordinator", PASSWORD)
    failure = json.dumps({"error": {"code": "unavailable", "message": UNAVAILABLE}})
    page.route(pattern, lambda route: route.fulfill(status=503, body=failure, content_type="application/json"))
    page.goto(f"{base}/projects/demo/map/")
    page.wait_for_function(SETTLED + " && document.getElementById('map-status').textContent !== ''", timeout=15_000)
    return context, page


def test_the_map_says_why_its_overlays_did_not_load(chromium, live_server, coordinated) -> None:  # noqa: F811
    context, page = map_with_unavailable(chromium, live_server.url, "**/map/*.geojson*")
    status = page.locator("#map-status")
    assert status.text_content() == f"The map could not load: {UNAVAILABLE}"
    assert "alert" in status.get_attribute("class")
    assert page.get_attribute("#consensus-map", "data-tiles-drawn") in (None, "0")
    context.close()


def test_an_overlay_failure_stays_said_until_that_overlay_loads(chromium, live_server, coordinated) -> None:  # noqa: F811
    """The tiles fail, then the buildings load: the status line still says the tiles did not, until they do."""
    context, page = map_with_unavailable(chromium, live_server.url, "**/map/tiles.geojson*")
    status = page.locator("#map-status")
    said = f"The map could not load: {UNAVAILABLE}"
    assert status.text_content() == said

    # The buildings load again on their own (switched off and on): the tiles' failure is still said.
    page.uncheck("#show-buildings")
    page.check("#show-buildings")
    page.wait_for_function("() => Number(document.getElementById('consensus-map').dataset.buildingsDrawn) > 0",
                           timeout=15_000)
    page.wait_for_function(SETTLED)
    assert status.text_content() == said
    assert "alert" in status.get_attribute("class")

    # The tiles come back: the status line says what is in view again.
    page.unroute("**/map/tiles.geojson*")
    page.uncheck("#show-tiles")
    page.check("#show-tiles")
    assert wait_for_overlays(page) > 0
    assert status.text_content().startswith("In view:")
    assert "alert" not in (status.get_attribute("class") or "")
    context.close()
