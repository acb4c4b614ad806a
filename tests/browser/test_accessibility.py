"""Accessibility: axe-core finds no WCAG 2 A/AA violation on the volunteers' pages (the published results
too), in English and Arabic, and a volunteer can tag a tile with the keyboard alone.

axe-core (MPL-2.0, vendored under tests/browser/vendor from the npm registry) is injected into
each page by the test; it is not served by the platform.
"""

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from imagery.models import Tile
from tagging.classifications import record_classification
from tagging.models import Classification, Project
from tests.browser.test_volunteer_browser import ARTIFACTS, chromium, demo, sign_in  # noqa: F401 (fixtures)

AXE = Path(__file__).with_name("vendor") / "axe-4.10.2.min.js"
PAGES = ["/", "/projects/demo/tag/?tutorial=1", "/projects/demo/tag/", "/projects/demo/me/", "/account/",
         "/projects/demo/", "/projects/demo/results/"]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("language", ["en", "ar"])
def test_no_wcag_violations_on_the_volunteer_pages(chromium, live_server, demo, language) -> None:  # noqa: F811
    reader = get_user_model().objects.create_user("reader", password="reader-pass-123")
    # The reader has tagged a tile of the demo, whose results are published: the results page opens to them.
    record_classification(volunteer=reader, tile=demo.exclude(status=Tile.Status.GOLD).order_by("id").first(),
                          answer="no_damage", marks=[], seconds=9.0, imported=True)
    Project.objects.filter(slug="demo").update(published_at=timezone.now())
    context = chromium.new_context(locale=language, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    found = {}
    for path in ["/accounts/login/", "/accounts/signup/"]:
        page.goto(live_server.url + path)
        found[path] = audit(page)
    sign_in(page, live_server.url, "reader", "reader-pass-123")
    for path in PAGES:
        assert page.goto(live_server.url + path).status == 200, path
        page.wait_for_load_state("networkidle")
        found[path] = audit(page)
    context.close()
    assert found == {path: [] for path in found}


def audit(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    return page.evaluate("""async () => {
        const result = await axe.run(document, {runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]});
        return result.violations.map(v => `${v.id} (${v.impact}): ${v.nodes.map(n => n.target.join(" ")).join(", ")}`);
    }""")


def test_a_tile_can_be_tagged_with_the_keyboard_alone(chromium, live_server, demo) -> None:  # noqa: F811
    user = get_user_model().objects.create_user("reader", password="reader-pass-123")
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    sign_in(page, live_server.url, "reader", "reader-pass-123")
    page.goto(f"{live_server.url}/projects/demo/tag/")
    page.wait_for_selector("#tutorial-start")
    page.focus("#tutorial-start")  # the tutorial's button, reached by Tab in a real session
    page.keyboard.press("Enter")
    settled = ("() => { const r = document.getElementById('tagger');"
               " return r.dataset.tile && !r.classList.contains('busy'); }")
    while True:
        page.wait_for_function(settled)
        if page.get_attribute("#tagger", "data-mode") == "tag":
            break
        practice = page.get_attribute("#tagger", "data-tile")
        page.keyboard.press("3")  # practice: "no damage"
        page.keyboard.press("Enter")
        page.wait_for_selector("#feedback[open]")
        page.keyboard.press("Enter")  # the dialog's Continue button has the focus
        page.wait_for_selector("#feedback:not([open])", state="attached")
        page.keyboard.press("Enter")  # go on from the feedback to the next tile
        page.wait_for_function(
            "last => { const r = document.getElementById('tagger');"
            " return r.dataset.tile !== last || r.dataset.mode === 'tag'; }", arg=practice)
    page.wait_for_function("document.querySelector('#map-a img.leaflet-image-layer')?.complete")
    tile = int(page.get_attribute("#tagger", "data-tile"))
    # Tab to the map, pan with the arrows, put a point at the centre with M, answer with 1, send with Enter.
    page.focus("#map-a")
    focus_ring = page.evaluate("getComputedStyle(document.getElementById('map-a')).outlineStyle")
    assert focus_ring != "none", "the focused map shows a focus ring"
    for key in ("ArrowRight", "ArrowDown"):
        page.keyboard.press(key)
        page.wait_for_timeout(400)  # Leaflet ignores a pan key while the previous pan is animating
    page.keyboard.press("m")
    page.keyboard.press("1")
    page.screenshot(path=str(ARTIFACTS / "keyboard-only.png"))
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.getElementById('tagger').dataset.tile !== '{tile}'")
    context.close()
    vote = Classification.objects.get(volunteer=user, tile_id=tile)
    assert vote.answer == "destroyed" and vote.marks.count() == 1
    mark = vote.marks.get()
    # The arrows moved the view right and down, so the centre point is right of and below the tile's middle.
    assert mark.x > vote.tile.size / 2 and mark.y > vote.tile.size / 2
