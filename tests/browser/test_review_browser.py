"""A coordinator in a real browser: opens the review page, relabels a tile, moves a building by dragging it, and
the GeoJSON export then says so; adds a building, moves it, undoes the move from its history, rejects and confirms
it, and the export and the API follow each step. Screenshots go to test-artifacts/browser/review-*.png."""

from __future__ import annotations

import json

import pytest

from imagery.models import Tile
from tagging.models import Building, Review, TileConsensus
from tests.browser.test_map_browser import PASSWORD, coordinated  # noqa: F401 (fixtures)
from tests.browser.test_volunteer_browser import ARTIFACTS, chromium, demo, sign_in  # noqa: F401 (fixtures)

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


def drag(page, selector: str, dx: float, dy: float) -> None:
    box = page.locator(selector).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(x + dx * step / 10, y + dy * step / 10)
    page.mouse.up()


def wait_status(page, text: str) -> None:
    page.wait_for_function("text => document.getElementById('review-status').textContent === text", arg=text)
    wait_ready(page)


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
    wait_status(page, "Tile relabelled.")

    page.select_option("#building-select", f"b{building.pk}")
    page.click("#move-building")
    assert page.get_attribute("#move-building", "aria-pressed") == "true"
    drag(page, "#review-map .leaflet-marker-icon.bmark.selected", 40, 30)
    wait_status(page, f"Building {building.pk} moved.")
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
    wait_status(page, "Review undone.")
    shot("3-undone")
    buildings = json.loads(page.request.get(
        f"{live_server.url}/api/v1/projects/demo/consensus/buildings.geojson").body())
    back = next(f for f in buildings["features"] if f["id"] == building.pk)
    assert back["properties"]["ground_x"] == pytest.approx(building.ground_x)
    assert not errors, errors
    assert not failed, failed
    context.close()


def test_a_coordinator_adds_a_building_moves_it_and_undoes_the_move(
        chromium, live_server, coordinated) -> None:  # noqa: F811
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = lambda name: page.screenshot(path=str(ARTIFACTS / f"review-en-added-{name}.png"))  # noqa: E731
    tile, _ = tile_with_a_building(coordinated)
    context = chromium.new_context(locale="en", viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors, failed = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    sign_in(page, live_server.url, "coordinator", PASSWORD)
    api = f"{live_server.url}/api/v1/projects/demo"

    def exported(add_id: int) -> dict | None:
        features = json.loads(page.request.get(f"{api}/consensus/buildings.geojson").body())["features"]
        return next((f["properties"] for f in features if f["id"] == f"review-{add_id}"), None)

    def trail(add_id: int) -> list[tuple[str, bool]]:
        reviews = json.loads(page.request.get(f"{api}/reviews/?added={add_id}").body())["results"]
        return [(r["action"], r["undone"]) for r in reviews]

    page.goto(f"{live_server.url}/projects/demo/review/?tile={tile.pk}")
    wait_ready(page)

    # Add: a click on the image, a quarter of the way in from the top-left corner.
    page.click("#add-building")
    stage = page.locator("#review-map").bounding_box()
    page.mouse.click(stage["x"] + stage["width"] * 0.3, stage["y"] + stage["height"] * 0.3)
    wait_status(page, "Building added.")
    add = Review.objects.get(project=coordinated, action="add")
    assert tile.minx < add.ground_x < tile.maxx and tile.miny < add.ground_y < tile.maxy
    assert page.input_value("#building-select") == f"a{add.pk}"  # the new building is selected
    assert page.locator("#building-history li").count() == 1
    assert not page.is_disabled("#move-building") and not page.is_disabled("#reject-building")
    shot("1-added")
    added = exported(add.pk)
    assert added["ground_x"] == pytest.approx(add.ground_x) and added["review_ids"] == [add.pk]

    # Move it by dragging: right and down on the image, east and south on the ground.
    page.click("#move-building")
    drag(page, "#review-map .leaflet-marker-icon.bmark.selected", 40, 30)
    wait_status(page, f"Added building {add.pk} moved.")
    move = Review.objects.get(project=coordinated, added=add, action="move")
    moved = exported(add.pk)
    assert moved["ground_x"] > add.ground_x + 1 and moved["ground_y"] < add.ground_y - 1
    assert moved["ground_x"] == pytest.approx(move.ground_x) and moved["review_ids"] == [add.pk, move.pk]
    assert trail(add.pk) == [("move", False), ("add", False)]
    assert page.locator("#building-history li").count() == 2
    assert "moved" in page.locator("#building-select option:checked").inner_text()
    shot("2-moved")

    # Undo the move from the building's history: back where it was added; the trail keeps the move, undone.
    page.locator("#building-history li", has_text="moved").get_by_role("button", name="Undo").click()
    wait_status(page, "Review undone.")
    back = exported(add.pk)
    assert back["ground_x"] == pytest.approx(add.ground_x) and back["ground_y"] == pytest.approx(add.ground_y)
    assert back["review_ids"] == [add.pk, move.pk]
    assert trail(add.pk) == [("move", True), ("add", False)]
    assert page.locator("#building-history li.undone").count() == 1
    shot("3-move-undone")

    # Reject it: out of the export, still on the review page (dashed) so that it can be confirmed or undone.
    page.click("#reject-building")
    wait_status(page, f"Added building {add.pk} rejected.")
    assert exported(add.pk) is None
    assert page.locator("#review-map .leaflet-marker-icon.bmark.rejected.selected").count() == 1
    page.click("#confirm-building")
    wait_status(page, f"Added building {add.pk} confirmed.")
    assert exported(add.pk)["ground_x"] == pytest.approx(add.ground_x)
    assert [action for action, _ in trail(add.pk)] == ["confirm", "reject", "move", "add"]
    shot("4-rejected-then-confirmed")
    assert not errors, errors
    assert not failed, failed
    context.close()
