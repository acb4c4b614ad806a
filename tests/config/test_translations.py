"""The Arabic catalogs: complete, well-formed, compiled, and served to the pages and to the tagging script."""

import ast
import gettext
import json
import re
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = ROOT / "locale" / "ar" / "LC_MESSAGES"
CATALOGS = ["django", "djangojs"]
ARABIC_PLURALS = ("nplurals=6; plural=n==0 ? 0 : n==1 ? 1 : n==2 ? 2 : "
                  "n%100>=3 && n%100<=10 ? 3 : n%100>=11 && n%100<=99 ? 4 : 5;")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]")
ARABIC_LETTER = re.compile(r"[\u0600-\u06FF]")


def read_po(path: Path) -> list[dict]:
    """Entries of a .po file: {"flags": {...}, "msgid": str, "msgid_plural": str?, "msgstr" or "msgstr[i]": str}.

    Obsolete entries (#~) are skipped; enough of the format for makemessages' output.
    """
    entries: list[dict] = []
    entry: dict = {"flags": set()}
    key = None

    def finish() -> None:
        nonlocal entry
        if "msgid" in entry:
            entries.append(entry)
        entry = {"flags": set()}

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#~"):
            continue
        if line.startswith("#"):
            if any(k.startswith("msgstr") for k in entry):
                finish()
            if line.startswith("#,"):
                entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
            continue
        keyword = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+(".*")$', line)
        if keyword:
            key = keyword.group(1)
            if key in ("msgid", "msgctxt") and any(k.startswith("msgstr") for k in entry):
                finish()
            entry[key] = ast.literal_eval(keyword.group(2))
        elif line.startswith('"'):
            entry[key] += ast.literal_eval(line)
        else:
            assert not line.strip(), f"{path.name}: cannot read {line!r}"
    finish()
    return entries


def header(entries: list[dict]) -> dict[str, str]:
    first = entries[0]
    assert first["msgid"] == "", "the header comes first"
    return dict(line.split(": ", 1) for line in first["msgstr"].splitlines() if ": " in line)


def messages(name: str) -> list[dict]:
    return [e for e in read_po(MESSAGES / f"{name}.po") if e["msgid"]]


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


@pytest.mark.parametrize("name", CATALOGS)
def test_the_catalog_is_arabic_with_six_plural_forms(name: str) -> None:
    entries = read_po(MESSAGES / f"{name}.po")
    meta = header(entries)
    assert meta["Language"] == "ar"
    assert meta["Content-Type"] == "text/plain; charset=UTF-8"
    assert meta["Plural-Forms"] == ARABIC_PLURALS
    assert "fuzzy" not in entries[0]["flags"]
    assert len(entries) > 1


@pytest.mark.parametrize("name", CATALOGS)
def test_every_message_is_translated_and_not_fuzzy(name: str) -> None:
    for entry in messages(name):
        assert "fuzzy" not in entry["flags"], entry["msgid"]
        if "msgid_plural" in entry:
            forms = sorted(k for k in entry if k.startswith("msgstr"))
            assert forms == [f"msgstr[{i}]" for i in range(6)], entry["msgid"]
            translations = [entry[k] for k in forms]
        else:
            translations = [entry["msgstr"]]
        for text in translations:
            assert text.strip(), f"untranslated: {entry['msgid']!r}"
            assert ARABIC_LETTER.search(text), f"not Arabic: {text!r}"


@pytest.mark.parametrize("name", CATALOGS)
def test_placeholders_are_kept(name: str) -> None:
    """The same placeholders as the English. A plural form that stands for a single n (0, 1 or 2 in
    Arabic) may spell that number out ("نقطتان") instead of its placeholder, as gettext allows."""
    for entry in messages(name):
        if "msgid_plural" not in entry:
            assert placeholders(entry["msgstr"]) == placeholders(entry["msgid"]), entry["msgid"]
            continue
        wanted = placeholders(entry["msgid_plural"])
        assert placeholders(entry["msgid"]) == wanted
        for i in range(6):
            found = placeholders(entry[f"msgstr[{i}]"])
            if i >= 3:
                assert found == wanted, (entry["msgid"], i)
            else:
                assert set(found) <= set(wanted) and len(wanted) - len(found) <= 1, (entry["msgid"], i)


@pytest.mark.parametrize("name", CATALOGS)
def test_the_compiled_catalog_matches_the_po_file(name: str) -> None:
    """compilemessages was run after the last edit of the .po file."""
    with (MESSAGES / f"{name}.mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    for entry in messages(name):
        # gettext keys a message with a context as "context\x04msgid".
        key = f"{entry['msgctxt']}\x04{entry['msgid']}" if entry.get("msgctxt") else entry["msgid"]
        if "msgid_plural" in entry:
            for i in range(6):
                assert compiled._catalog.get((key, i)) == entry[f"msgstr[{i}]"], entry["msgid"]
        else:
            assert compiled._catalog.get(key) == entry["msgstr"], entry["msgid"]


SCRIPTS = sorted((ROOT / "config" / "static" / "js").rglob("*.js"))
TEMPLATES = sorted(p for folder in ("tagging/templates", "config/templates") for p in (ROOT / folder).rglob("*.html"))


def test_the_checks_below_see_every_script_and_template() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"tagger.js", "progress.js", "dashboard.js", "manage.js", "map.js"} <= names
    assert {"base.html", "home.html", "dashboard.html", "map.html", "members.html"} <= {p.name for p in TEMPLATES}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_string_of_the_scripts_is_in_the_catalog(script: Path) -> None:
    """A gettext()/ngettext() added to the JavaScript without running makemessages shows in English."""
    known = {e["msgid"] for e in messages("djangojs")}
    known_plurals = {e["msgid_plural"] for e in messages("djangojs") if "msgid_plural" in e}
    string = r'"((?:[^"\\]|\\.)*)"'
    call = re.compile(r"\b(?:gettext|ngettext)\(\s*" + string)
    plural = re.compile(r"\bngettext\(\s*" + string + r"\s*,\s*" + string)
    text = script.read_text(encoding="utf-8")
    found = {json.loads(f'"{s}"') for s in call.findall(text)}
    assert found <= known, sorted(found - known)
    found_plurals = {json.loads(f'"{p}"') for _, p in plural.findall(text)}
    assert found_plurals <= known_plurals, sorted(found_plurals - known_plurals)


def test_every_simple_template_string_is_in_the_catalog() -> None:
    """{% translate "..." %} in every template. makemessages doubles a literal % ("(%)" is the msgid "(%%)")."""
    known = {e["msgid"] for e in messages("django")}
    tag = re.compile(r"""\{%\s*(?:translate|trans)\s+(?:"([^"]*)"|'([^']*)')""")
    found = {(a or b).replace("%", "%%") for t in TEMPLATES for a, b in tag.findall(t.read_text(encoding="utf-8"))}
    assert found and found <= known, sorted(found - known)


def test_every_block_template_string_is_in_the_catalog() -> None:
    """{% blocktranslate %}...{% endblocktranslate %} without a plural: {{ name }} becomes %(name)s."""
    known = {e["msgid"] for e in messages("django")}
    block = re.compile(r"\{%\s*blocktrans(?:late)?\b([^%]*)%\}(.*?)\{%\s*endblocktrans(?:late)?\s*%\}", re.S)
    found = set()
    for template in TEMPLATES:
        for options, body in block.findall(template.read_text(encoding="utf-8")):
            if re.search(r"\{%\s*plural", body):
                continue
            if re.search(r"\btrimmed\b", options):
                body = " ".join(line.strip() for line in body.strip().splitlines() if line.strip())
            body = body.replace("%", "%%")
            found.add(re.sub(r"\{\{\s*(\w+)\s*\}\}", r"%(\1)s", body))
    assert found and found <= known, sorted(found - known)


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["header", "cookie"])
def test_the_home_page_in_arabic_is_right_to_left(client, how: str) -> None:
    if how == "cookie":
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ar"
        response = client.get("/")
    else:
        response = client.get("/", HTTP_ACCEPT_LANGUAGE="ar")
    page = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="ar" dir="rtl">' in page
    assert "<title>رسم خرائط الأضرار</title>" in page
    assert "ينظر المتطوّعون إلى مربّعات صغيرة من صور الأقمار الصناعية" in page
    assert "Volunteers look at small tiles" not in page


@pytest.mark.django_db
def test_the_home_page_stays_english_by_default(client) -> None:
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="en" dir="ltr">' in page
    assert "Volunteers look at small tiles" in page


def js_catalog(client, language: str) -> tuple[str, dict]:
    """The /jsi18n/ script and the catalog it installs (JSON inside the script)."""
    response = client.get("/jsi18n/", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    script = response.content.decode()
    found = re.search(r"const newcatalog = (\{.*?\});\n", script, re.S)
    return script, json.loads(found.group(1)) if found else {}


def test_the_javascript_catalog_in_arabic(client) -> None:
    script, catalog = js_catalog(client, "ar")
    assert catalog["Start the practice"] == "ابدأ التمرين"
    assert catalog["This was a tile whose answer we know"] == "كان هذا مربّعًا معروف الإجابة"
    assert catalog["Agreement with the crowd"] == "التوافق مع بقية المتطوّعين"
    assert catalog["%s point"] == ["لا توجد نقاط", "نقطة واحدة", "نقطتان", "%s نقاط", "%s نقطة", "%s نقطة"]
    assert "n==2 ? 2 : n%100>=3 && n%100<=10 ? 3 : n%100>=11 && n%100<=99 ? 4 : 5" in script  # pluralidx
    for entry in messages("djangojs"):
        assert entry["msgid"] in catalog, entry["msgid"]


def test_the_javascript_catalog_in_english_has_none_of_it(client) -> None:
    _, catalog = js_catalog(client, "en")
    assert "Start the practice" not in catalog
