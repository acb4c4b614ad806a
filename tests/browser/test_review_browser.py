"""A coordinator in a real browser: opens the review page, relabels a tile, moves a building by dragging it, and
the GeoJSON export then says so. Screenshots go to test-artifacts/browser/review-*.png."""

from __future__ import annotations

import json

import pytest

from imagery.models import Tile
from tagging.models import Building, Review, TileConsensus
from tests.browser.test_map_browser import PASSWORD, coordinated, sign_in  # noqa: F401 (fixtures)
from tests.browser.test_volunteer_browser import ARTIFACTS, chromium, demo  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def tile_with_a_building(project) -> tuple[Tile, Building]:
    for building in Building.objects.filter(project=project, confidence__gte=0.5).order_by("-confidence", "id"):
        tile = (Tile.objects.filter(grid__project=project, consensus__isnull=False, minx__lt=building.ground_x - 20,
                                    maxx__gt=building.ground_x + 20, miny__lt=building.ground_y - 20,
                                    maxy__gt=building.ground_y + 20).exclude(status=Tile.Status.GOLD).first())
        if tile is not None:
            return tile, building
    raise AssertionError("the demo crowd found no building well inside a tile")


def wait_ready(page) -> None:
    page.wait_for_function("""() => document.getElementById("review-app").dataset.ready === "1"
                                    && [...document.querySelectorAll("#review-map img.leaflet-image-layer")]
                                       .every(i => i.complete)""", timeout=15_000)
    page.wait_for_timeout(300)


def test_a_coordinator_relabels_a_tile_and_moves_a_building(chromium, live_server, coordinated) -> None:  # noqa: F811
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = lambda name: page.screenshot(path=str(ARTIFACTS / f"review-en-{name}.png"))  # noqa: E731
    tile, building = tile_with_a_building(coordinated)
    crowd_label = TileConsensus.objects.get(tile=tile).label
    new_label = "no_damage" if crowd_label != "no_damage" else "destroyed"

    context = chromium.new_context(locale="en", viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors, failed = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    sign_in(page, live_server.url, "coordinator", PASSWORD)

    page.goto(f"{live_server.url}/projects/demo/review/?tile={tile.pk}")
    wait_ready(page)
    page.wait_for_selector("#queue-list li button")
    assert page.locator("#volunteer-list li").count() == 5  # the five volunteers of the demo crowd
    assert page.locator("#review-map .leaflet-marker-icon.bmark").count() >= 1
    shot("1-tile")

    page.select_option("#relabel-answer", new_label)
    page.fill("#review-note", "Roofs intact on the later image")
    page.click("#relabel-tile")
    page.wait_for_function("""() => document.getElementById("review-status").textContent === "Tile relabelled." """)
    wait_ready(page)

    page.select_option("#building-select", f"b{building.pk}")
    page.click("#move-building")
    assert page.get_attribute("#move-building", "aria-pressed") == "true"
    marker = page.locator("#review-map .leaflet-marker-icon.bmark.selected")
    box = marker.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(x + 4 * step, y + 3 * step)
    page.mouse.up()
    page.wait_for_function(
        f"""() => document.getElementById("review-status").textContent === "Building {building.pk} moved." """)
    wait_ready(page)
    assert page.locator("#audit-list li").count() == 2
    shot("2-reviewed")

    tiles = json.loads(page.request.get(f"{live_server.url}/api/v1/projects/demo/consensus/tiles.geojson").body())
    mine = next(f for f in tiles["features"] if f["id"] == tile.pk)["properties"]
    assert mine["label"] == new_label and mine["reviewed"] and mine["review_action"] == "relabel"
    buildings = json.loads(page.request.get(
        f"{live_server.url}/api/v1/projects/demo/consensus/buildings.geojson").body())
    moved = next(f for f in buildings["features"] if f["id"] == building.pk)
    assert moved["properties"]["review_action"] == "move"
    # Dragged right and down on the image: east and south on the ground.
    assert moved["properties"]["ground_x"] > building.ground_x + 1
    assert moved["properties"]["ground_y"] < building.ground_y - 1
    crowd = json.loads(page.request.get(
        f"{live_server.url}/api/v1/projects/demo/consensus/tiles.geojson?reviews=0").body())
    assert next(f for f in crowd["features"] if f["id"] == tile.pk)["properties"]["label"] == crowd_label
    assert Review.objects.filter(project=coordinated, undone_at__isnull=True).count() == 2

    # Undo the move from the audit list: the building is back where the crowd put it.
    page.locator("#audit-list li", has_text="moved").get_by_role("button", name="Undo").click()
    page.wait_for_function("""() => document.getElementById("review-status").textContent === "Review undone." """)
    wait_ready(page)
    shot("3-undone")
    buildings = json.loads(page.request.get(
        f"{live_server.url}/api/v1/projects/demo/consensus/buildings.geojson").body())
    back = next(f for f in buildings["features"] if f["id"] == building.pk)
    assert back["properties"]["ground_x"] == pytest.approx(building.ground_x)
    assert not errors, errors
    assert not failed, failed
    context.close()
