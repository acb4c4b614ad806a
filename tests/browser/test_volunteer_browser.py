"""A new volunteer in a real browser: signs up, does the tutorial, tags five tiles with clicks, taps and keys.

Headless Chromium (Debian's package) driven by Playwright, on a laptop-sized and a phone-sized
viewport, in English and in Arabic. The screenshots are kept under test-artifacts/browser/ (or
$TEST_ARTIFACTS) for people to look at. The browser runs against pytest-django's live server on
a small generated demo project whose tiles were cut by the real tiling code.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections

from imagery.models import Tile, TileImage
from tagging.models import Classification, GoldAnswer, Membership

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")) / "browser"
VIEWPORTS = {"laptop": {"viewport": {"width": 1366, "height": 800}},
             "phone": {"viewport": {"width": 390, "height": 780}, "is_mobile": True, "has_touch": True,
                       "device_scale_factor": 2}}

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def chromium(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls made by the test
    # are still plain synchronous calls, so Django's guard against async contexts is lifted
    # (what pytest-playwright's documentation recommends for Django).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not CHROMIUM.exists():
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing and REQUIRE_BROWSER is set (apt-get install chromium)")
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        yield browser
        # The test's database connections were opened while Playwright's sync API kept an asyncio loop running in
        # this thread. Django then keeps the thread's connections apart (asgiref's thread-critical Local: a
        # context variable while a loop runs, the plain thread-local otherwise), so the test database's teardown at
        # the end of the session did not see them and could not drop the database ("1 other session"). Closed
        # here, while the loop still runs.
        connections.close_all()
        browser.close()


@pytest.fixture
def demo(settings):
    settings.DEBUG = False
    call_command("load_demo", "--size", "768", stdout=open(os.devnull, "w"))
    return Tile.objects.filter(grid__project__slug="demo")


@dataclass
class Expected:
    answer: str
    marks: list[tuple[float, float, str]] = field(default_factory=list)  # tile pixels and the date


class Volunteer:
    """Drives the tagging page the way a person does, and notes what the database should then hold."""

    def __init__(self, page, device: str, language: str, shots: Path) -> None:
        self.page, self.device, self.language, self.shots = page, device, language, shots
        self.touch = device == "phone"
        self.expected: dict[int, Expected] = {}
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{self.device}-{self.language}-{name}.png"))

    def wait_for_tile(self, previous: str | None) -> int:
        page = self.page
        page.wait_for_function(
            """previous => {
                 const root = document.getElementById("tagger");
                 const img = document.querySelector("#map-a img.leaflet-image-layer");
                 return root.dataset.tile && root.dataset.tile !== previous && img && img.complete
                        && img.naturalWidth > 0 && !root.classList.contains("busy");
               }""", arg=previous or "", timeout=15_000)
        page.wait_for_timeout(150)  # Leaflet's fit-to-tile settles
        return int(page.get_attribute("#tagger", "data-tile"))

    def image_box(self) -> dict[str, float]:
        # The image on top is the last overlay added (flick mode shows one date at a time).
        return self.page.locator("#map-a img.leaflet-image-layer").last.bounding_box()

    def point(self, fx: float, fy: float) -> tuple[float, float]:
        box = self.image_box()
        x, y = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
        if self.touch:
            self.page.touchscreen.tap(x, y)
        else:
            self.page.mouse.click(x, y)
        self.page.wait_for_timeout(60)
        return x, y

    def answer(self, key: str, digit: str) -> None:
        if self.touch:
            self.page.locator(f"#answers button[data-key='{key}']").tap()
        else:
            self.page.keyboard.press(digit)

    def send(self) -> None:
        if self.touch:
            self.page.locator("#submit").tap()
        else:
            self.page.keyboard.press("Enter")

    def date_shown(self) -> str:
        return self.page.inner_text("#label-a").strip()


def sign_up(page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/signup/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password1]", "a long volunteer passphrase")
    page.fill("input[name=password2]", "a long volunteer passphrase")
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/")


def sign_in(page, base: str, username: str, password: str = "a long volunteer passphrase") -> None:
    """Sign in through the login page (every browser test's way in)."""
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", password)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/")


def do_tutorial(volunteer: Volunteer) -> int:
    page = volunteer.page
    page.wait_for_selector("#tutorial:not([hidden])")
    volunteer.shot("1-tutorial")
    page.click("#tutorial-start")
    practised, last = 0, None
    while page.get_attribute("#tagger", "data-mode") == "practice" or practised == 0:
        volunteer.wait_for_tile(None if last is None else str(last))
        last = int(page.get_attribute("#tagger", "data-tile"))
        volunteer.point(0.5, 0.5)
        volunteer.answer("destroyed", "1")
        volunteer.send()
        page.wait_for_selector("#feedback[open]")
        volunteer.shot(f"2-practice-feedback-{practised + 1}")
        page.click("#feedback-ok")
        volunteer.send()  # the rings stay on the image until the volunteer goes on
        practised += 1
        page.wait_for_function(
            "last => { const r = document.getElementById('tagger');"
            " return r.dataset.tile !== String(last) || r.dataset.mode === 'tag'; }", arg=last)
        if page.get_attribute("#tagger", "data-mode") == "tag":
            break
    return practised


def tag_five_tiles(volunteer: Volunteer, dates: list[str]) -> None:
    page = volunteer.page
    previous = None
    for index in range(5):
        tile = volunteer.wait_for_tile(previous)
        if page.locator("#feedback[open]").count():
            pytest.fail("a gold tile's feedback showed before the tile was answered")
        expected = Expected(answer="no_damage")
        if index == 0:  # two points, undo the second, answer with a key
            volunteer.point(0.3, 0.3)
            volunteer.point(0.6, 0.7)
            page.keyboard.press("z")
            expected = Expected("destroyed", [(0.3, 0.3, dates[-1])])
            volunteer.answer("destroyed", "1")
        elif index == 1:  # no damage, nothing marked
            volunteer.answer("no_damage", "3")
        elif index == 2:  # flick to the earlier date and mark there: the point records that date
            if volunteer.touch:
                page.locator("#date-bar [data-mode=flick]").tap()  # the Flick button flips the date
            else:
                page.keyboard.press("d")
            assert volunteer.date_shown() == dates[0]
            volunteer.point(0.5, 0.5)
            expected = Expected("destroyed", [(0.5, 0.5, dates[0])])  # a point picks the damage answer itself
            page.keyboard.press("d")
            assert volunteer.date_shown() == dates[-1]
        elif index == 3:  # a point put and taken away again (click on the point), then "damaged"
            volunteer.point(0.25, 0.75)
            volunteer.point(0.25, 0.75)
            volunteer.point(0.75, 0.25)
            volunteer.answer("damaged", "2")
            expected = Expected("damaged", [(0.75, 0.25, dates[-1])])
        else:
            volunteer.answer("cant_tell", "4")
            expected = Expected("cant_tell")
        if index == 2:
            volunteer.shot("3-marked-earlier-date")
        if index == 3:
            volunteer.shot("4-tagging")
        # What is drawn is what will be sent: no point left behind by an undo, a removal or an earlier tile.
        assert page.locator("#map-a path.mark").count() == len(expected.marks)
        volunteer.expected[tile] = expected
        volunteer.send()
        previous = str(tile)
    page.wait_for_function("document.getElementById('session-count').textContent.includes('5')")
    volunteer.shot("5-after-five-tiles")


@pytest.mark.parametrize(("device", "language"), [("laptop", "en"), ("phone", "en"), ("laptop", "ar"),
                                                  ("phone", "ar")])
def test_a_new_volunteer_signs_up_practises_and_tags_five_tiles(chromium, live_server, demo, device,
                                                               language) -> None:
    shots = ARTIFACTS
    shots.mkdir(parents=True, exist_ok=True)
    dates = [str(d) for d in demo.first().grid.project.layers.order_by("date").values_list("date", flat=True)]
    tiles = {t.pk: t for t in demo}
    gold_tiles = set(GoldAnswer.objects.values_list("tile_id", flat=True))
    context = chromium.new_context(locale=language, **VIEWPORTS[device])
    page = context.new_page()
    volunteer = Volunteer(page, device, language, shots)
    username = f"new-{device}-{language}"
    sign_up(page, live_server.url, username)
    assert page.get_attribute("html", "dir") == ("rtl" if language == "ar" else "ltr")
    page.goto(f"{live_server.url}/projects/demo/tag/")
    practised = do_tutorial(volunteer)
    tag_five_tiles(volunteer, dates)
    page.goto(f"{live_server.url}/projects/demo/me/")
    page.wait_for_selector(".stat")
    volunteer.shot("6-how-am-i-doing")
    context.close()
    assert not volunteer.errors, volunteer.errors

    assert practised == min(3, len(gold_tiles))
    assert Membership.objects.get(user__username=username).tutorial_done_at is not None
    votes = {c.tile_id: c for c in Classification.objects.filter(volunteer__username=username)}
    assert set(votes) == set(volunteer.expected), "the database holds exactly the five answered tiles"
    assert not set(votes) & gold_tiles  # practice tiles are not served again
    for tile_id, expected in volunteer.expected.items():
        vote, tile = votes[tile_id], tiles[tile_id]
        assert vote.answer == expected.answer
        assert vote.seconds is not None and vote.seconds > 0
        marks = list(vote.marks.select_related("layer").order_by("pk"))
        assert len(marks) == len(expected.marks)
        pixel = (tile.maxx - tile.minx) / tile.size
        for mark, (fx, fy, date) in zip(marks, expected.marks):
            # Where the browser clicked, in tile pixels, within a pixel or two of rounding and zoom.
            assert mark.x == pytest.approx(fx * tile.size, abs=2.5)
            assert mark.y == pytest.approx(fy * tile.size, abs=2.5)
            # And on the ground: x east from the tile's west edge, y south from its north edge.
            assert mark.ground_x == pytest.approx(tile.minx + fx * tile.size * pixel, abs=2.5 * pixel)
            assert mark.ground_y == pytest.approx(tile.maxy - fy * tile.size * pixel, abs=2.5 * pixel)
            assert str(mark.layer.date) == date



def test_a_refused_answer_says_why_in_the_volunteers_language(chromium, live_server, demo, django_user_model) -> None:
    """The project is paused while a volunteer works: their answer is refused (409), and the page says why, in
    Arabic, in place of the workspace: it no longer offers the tile it had fetched ahead, which would be refused
    too. (The reason used to be wiped at once by the next tile; then the next tile stayed on offer.)"""
    project = demo.first().grid.project
    user = django_user_model.objects.create_user("paused-ar", password="a long volunteer passphrase")
    Membership.objects.create(project=project, user=user, tutorial_done_at=project.created_at)
    context = chromium.new_context(locale="ar", **VIEWPORTS["laptop"])
    page = context.new_page()
    volunteer = Volunteer(page, "laptop", "ar", ARTIFACTS)
    sign_in(page, live_server.url, "paused-ar")
    page.goto(f"{live_server.url}/projects/demo/tag/")
    volunteer.wait_for_tile(None)
    project.status = "paused"
    project.save()
    volunteer.answer("no_damage", "3")
    volunteer.send()
    page.wait_for_selector("#finished:not([hidden])", timeout=15_000)
    page.wait_for_timeout(500)  # nothing replaces it afterwards
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    volunteer.shot("7-refused-paused")
    heading, said = page.inner_text("#finished-h"), page.inner_text("#finished-text")
    workspace_hidden = page.eval_on_selector("#workspace", "w => w.hidden")
    context.close()
    assert heading == "الوسم مغلق حاليًا"
    assert said == f"المشروع «{project.name}» متوقّف مؤقّتًا، وليس مفتوحًا للوسم."
    assert workspace_hidden
    assert not volunteer.errors, volunteer.errors
    assert not Classification.objects.filter(volunteer=user).exists()


def test_a_tile_lacking_a_date_is_shown_and_said_so_in_every_compare_mode(chromium, live_server, demo,
                                                                         django_user_model) -> None:
    """The dates' images need not cover the same ground: a tile of a two-date project may have one image only.
    The page used to fail on such a tile (it looked for the later image at the index of the project's later
    date). It shows the one image, says which date is missing, survives flick, swipe and side by side, and a
    point put on it records the image's date."""
    project = demo.first().grid.project
    earlier, later = (str(d) for d in project.layers.order_by("date").values_list("date", flat=True))
    TileImage.objects.filter(tile__grid__project=project, layer__date=earlier).delete()
    user = django_user_model.objects.create_user("one-date", password="a long volunteer passphrase")
    Membership.objects.create(project=project, user=user, tutorial_done_at=project.created_at)
    context = chromium.new_context(**VIEWPORTS["laptop"])
    page = context.new_page()
    volunteer = Volunteer(page, "laptop", "en", ARTIFACTS)
    sign_in(page, live_server.url, "one-date")
    page.goto(f"{live_server.url}/projects/demo/tag/")
    tile = volunteer.wait_for_tile(None)
    labels = [volunteer.date_shown()]
    page.keyboard.press("d")  # flick: there is nothing to flick to, and nothing breaks
    labels.append(volunteer.date_shown())
    for mode in ("swipe", "side", "flick"):
        page.click(f"#date-bar [data-mode={mode}]")
        page.wait_for_timeout(200)
        labels.append(volunteer.date_shown())
    clipped = page.eval_on_selector("#map-a img.leaflet-image-layer", "img => img.style.clipPath")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    volunteer.shot("8-tile-lacking-a-date")
    volunteer.point(0.5, 0.5)
    volunteer.send()
    page.wait_for_function("document.getElementById('session-count').textContent.includes('1')")
    context.close()
    assert not volunteer.errors, volunteer.errors
    assert labels == [f"{later} (no image of {earlier} on this tile)"] * 5
    assert not clipped  # swipe mode left the only image whole
    vote = Classification.objects.get(volunteer=user, tile_id=tile)
    assert vote.answer == "destroyed"
    assert [str(mark.layer.date) for mark in vote.marks.select_related("layer")] == [later]
