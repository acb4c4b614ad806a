"""The load generator: `python -m bench.map.load SPEC.json RESULT.json`, one phase per run.

Its own process (one asyncio loop, aiohttp, no Django), so the parent can tell its CPU apart from the
server's. Simulated coordinators look at the map of a 1366 x 768 px screen the way the map page does.

The load model (a person at a browser, not a closed loop): each coordinator makes a move, then its browser
fetches everything the page fetches for the new view at once, over at most BROWSER_CONNECTIONS (6)
connections to the server, as a browser does over HTTP/1.1 for one host, then the person looks at the
map for a think time drawn from an exponential distribution (mean ``think_s``) before the next move.
``think_s`` 0 drops the pause: every coordinator then asks again as soon as its last answer arrives, a
closed loop that saturates the server (a stress test, not 50 people). A latency runs from the moment the
request goes out on a connection to its last byte (what the server and the network take; the wait for
a free connection inside the browser is not in it).

- "map": a random walk over the project (pan by part of a screen, zoom in towards a point, zoom out,
  now and then a jump to the imagery at street zoom). After each move, like the page on "moveend":
  the tile and building overlays for the view (padded 5 %, both at once; asked first, as the browser
  gives fetch() a higher priority than images), the static reference file, and the imagery tiles in
  view that this coordinator's browser has not cached yet; then a think time.
- "imagery-cold": each coordinator takes the next screenful of imagery tiles nobody has asked for yet
  (``views``: every zoom of the layer, zooms taking turns), so every request renders.
- "imagery-stored": screenfuls the cold phase finished (``done``), at random, minus the tiles this
  coordinator's browser already holds: every tile comes from storage.

Each move also fetches the static file once, so the reference sees the same contention. Requests that
end inside [warmup_s, warmup_s + measure_s] count; "window-start"/"window-end" on stdout tell the parent
when to sample /proc.
"""

import asyncio
import json
import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.volunteers.load import clock

TIMEOUT_S = 120.0
IDLE_KEEPALIVE_S = 1.0  # under gunicorn's keepalive (2 s)
SCREEN = (1366, 768)
BROWSER_CONNECTIONS = 6  # a browser's connections to one host (HTTP/1.1)
ZOOMS = (11, 19)


def zoom_class(z: int) -> str:
    return "city" if z <= 13 else "district" if z <= 15 else "street"


@dataclass
class Phase:
    spec: dict[str, Any]
    started: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    sizes: dict[str, list[int]] = field(default_factory=dict)
    aggregated: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    moves: int = 0
    cpu_s: float = 0.0
    done: list[int] = field(default_factory=list)  # imagery views whose tiles were all requested

    @property
    def window(self) -> tuple[float, float]:
        start = self.started + self.spec["warmup_s"]
        return start, start + self.spec["measure_s"]

    def record(self, category: str, sent: float, status: int, size: int) -> bool:
        done = time.perf_counter()
        self.statuses[f"{category} {status}"] += 1
        start, end = self.window
        if start <= done < end:
            self.latencies.setdefault(category, []).append((done - sent) * 1000)
            self.sizes.setdefault(category, []).append(size)
            return True
        return False


async def fetch(phase: Phase, session: aiohttp.ClientSession, gate: asyncio.Semaphore, category: str, url: str,
                headers: dict[str, str] | None = None) -> bytes | None:
    """One request over one of the browser's connections (``gate``); the latency starts when it goes out."""
    async with gate:
        return await send(phase, session, category, url, headers)


async def send(phase: Phase, session: aiohttp.ClientSession, category: str, url: str,
               headers: dict[str, str] | None) -> bytes | None:
    sent = time.perf_counter()
    try:
        async with session.get(url, headers=headers) as response:
            body = await response.read()
            status = response.status
            wire = int(response.headers.get("Content-Length", len(body)))  # gzipped size when it was
            if category == "imagery":  # the map phase: which tiles the server had to render
                category = "imagery rendered" if response.headers.get("X-Cache") == "miss" else "imagery stored"
    except (aiohttp.ClientError, TimeoutError) as exc:
        phase.errors[f"{category} {type(exc).__name__}"] += 1
        return None
    counted = phase.record(category, sent, status, wire)
    if counted and category.startswith(("tiles ", "buildings ")) and b'"aggregated":true' in body[:400]:
        phase.aggregated[category] += 1
    return body if status == 200 else None


# --- Web-mercator arithmetic ----------------------------------------------------------------------------------

def to_pixels(lon: float, lat: float, z: int) -> tuple[float, float]:
    n = 256 * 2**z
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return (lon + 180) / 360 * n, y


def to_lonlat(px: float, py: float, z: int) -> tuple[float, float]:
    n = 256 * 2**z
    return px / n * 360 - 180, math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * py / n))))


def view_bbox(lon: float, lat: float, z: int, pad: float = 0.05) -> tuple[float, float, float, float]:
    cx, cy = to_pixels(lon, lat, z)
    half_w, half_h = SCREEN[0] * (0.5 + pad), SCREEN[1] * (0.5 + pad)
    west, north = to_lonlat(cx - half_w, cy - half_h, z)
    east, south = to_lonlat(cx + half_w, cy + half_h, z)
    return west, south, east, north


def imagery_tiles(layer: dict, lon: float, lat: float, z: int) -> list[str]:
    """The layer's tiles a Leaflet tile layer fetches for this view (native zooms clamped as the page sets them)."""
    if z < layer["minzoom"] - 2:
        return []
    native = min(max(z, layer["minzoom"]), layer["maxzoom"])
    west, south, east, north = view_bbox(lon, lat, z, pad=0.0)
    lw, ls, le, ln = layer["bounds"]
    west, south, east, north = max(west, lw), max(south, ls), min(east, le), min(north, ln)
    if west >= east or south >= north:
        return []
    x0, y0 = (int(v // 256) for v in to_pixels(west, north, native))
    x1, y1 = (int(v // 256) for v in to_pixels(east, south, native))
    return [tile_url(layer, native, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def tile_url(layer: dict, z: int, x: int, y: int) -> str:
    return layer["url"].replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(y))


def screenfuls(layer: dict) -> list[tuple[int, list[str]]]:
    """Every tile of the layer at each of its zooms, cut into screen-sized groups; zooms take turns."""
    per_zoom: list[list[tuple[int, list[str]]]] = []
    across, down = math.ceil(SCREEN[0] / 256), math.ceil(SCREEN[1] / 256)
    lw, ls, le, ln = layer["bounds"]
    for z in range(layer["minzoom"], layer["maxzoom"] + 1):
        x0, y0 = (int(v // 256) for v in to_pixels(lw, ln, z))
        x1, y1 = (int(v // 256) for v in to_pixels(le, ls, z))
        groups = []
        for gx in range(x0, x1 + 1, across):
            for gy in range(y0, y1 + 1, down):
                groups.append((z, [tile_url(layer, z, x, y) for x in range(gx, min(gx + across, x1 + 1))
                                   for y in range(gy, min(gy + down, y1 + 1))]))
        per_zoom.append(groups)
    mixed = []
    while any(per_zoom):
        for groups in per_zoom:
            if groups:
                mixed.append(groups.pop(0))
    return mixed


# --- Coordinators ---------------------------------------------------------------------------------------------

class Walker:
    """Where one coordinator looks: a random walk of pans and zooms over the project."""

    def __init__(self, rng: random.Random, extent: list[float], imagery: list[float]) -> None:
        self.rng, self.extent, self.imagery = rng, extent, imagery
        self.z = rng.choice([11, 12, 12, 13])
        self.lon, self.lat = rng.uniform(extent[0], extent[2]), rng.uniform(extent[1], extent[3])

    def step(self) -> None:
        rng, r = self.rng, self.rng.random()
        cx, cy = to_pixels(self.lon, self.lat, self.z)
        if r < 0.12:  # straight to the imagery, at street zoom
            self.lon = rng.uniform(self.imagery[0], self.imagery[2])
            self.lat = rng.uniform(self.imagery[1], self.imagery[3])
            self.z = rng.randint(15, 19)
            return
        if r < 0.45:  # zoom in towards a point of the screen
            dz = rng.choice([1, 1, 2])
            cx += rng.uniform(-0.25, 0.25) * SCREEN[0]
            cy += rng.uniform(-0.25, 0.25) * SCREEN[1]
            self.lon, self.lat = to_lonlat(cx, cy, self.z)
            self.z = min(ZOOMS[1], self.z + dz)
        elif r < 0.65:
            self.z = max(ZOOMS[0], self.z - rng.choice([1, 1, 2]))
        else:  # pan by part of a screen
            angle, share = rng.uniform(0, 2 * math.pi), rng.uniform(0.3, 0.8)
            self.lon, self.lat = to_lonlat(cx + math.cos(angle) * share * SCREEN[0],
                                           cy + math.sin(angle) * share * SCREEN[1], self.z)
        w, s, e, n = self.extent
        self.lon, self.lat = min(max(self.lon, w), e), min(max(self.lat, s), n)


async def images(phase: Phase, session: aiohttp.ClientSession, gate: asyncio.Semaphore, category: str,
                 urls: list[str], headers: dict[str, str], cached: set[str]) -> None:
    """The tiles of a view this browser does not hold yet (they come with a year's immutable Cache-Control)."""
    async def one(url: str) -> None:
        if await fetch(phase, session, gate, category, phase.spec["base_url"] + url, headers) is not None:
            cached.add(url)

    await asyncio.gather(*(one(url) for url in urls if url not in cached))


async def think(phase: Phase, rng: random.Random) -> None:
    mean = phase.spec["think_s"]
    pause = rng.expovariate(1 / mean) if mean > 0 else 0.0
    await asyncio.sleep(max(0.0, min(pause, phase.window[1] - time.perf_counter())))


async def browsing(phase: Phase, session: aiohttp.ClientSession, index: int, rng: random.Random) -> None:
    spec = phase.spec
    base, slug, layer = spec["base_url"], spec["slug"], spec["layers"][-1]
    headers = {"Authorization": f"Token {spec['tokens'][index]}"}
    walker = Walker(rng, spec["extent"], layer["bounds"])
    cached: set[str] = set()  # the browser's cache of imagery tiles
    gate = asyncio.Semaphore(BROWSER_CONNECTIONS)
    await asyncio.sleep(rng.uniform(0, max(spec["think_s"], 0.3)))
    while time.perf_counter() < phase.window[1]:
        walker.step()
        z, zc = walker.z, zoom_class(walker.z)
        query = "bbox=" + ",".join(f"{v:.6f}" for v in view_bbox(walker.lon, walker.lat, z)) + f"&zoom={z}"
        await asyncio.gather(  # in this order into the browser's connection queue: the overlays first
            fetch(phase, session, gate, f"tiles {zc}", f"{base}/api/v1/projects/{slug}/map/tiles.geojson?{query}"
                                                 "&color=answer", headers),
            fetch(phase, session, gate, f"buildings {zc}", f"{base}/api/v1/projects/{slug}/map/buildings.geojson?"
                                                     f"{query}&min_confidence=0.5", headers),
            fetch(phase, session, gate, "static", base + spec["static_path"]),
            images(phase, session, gate, "imagery", imagery_tiles(layer, walker.lon, walker.lat, z), headers, cached))
        phase.moves += 1
        await think(phase, rng)


async def imagery_views(phase: Phase, session: aiohttp.ClientSession, index: int, rng: random.Random,
                        queue: list[int]) -> None:
    """Cold: take the next view nobody has asked for. Stored: any view the cold phase finished, at random."""
    spec = phase.spec
    views, cold = spec["views"], spec["kind"] == "imagery-cold"
    headers = {"Authorization": f"Token {spec['tokens'][index]}"}
    cached: set[str] = set()
    gate = asyncio.Semaphore(BROWSER_CONNECTIONS)
    while time.perf_counter() < phase.window[1] and (queue or not cold):
        view = queue.pop() if cold else rng.choice(spec["done"])
        await asyncio.gather(fetch(phase, session, gate, "static", spec["base_url"] + spec["static_path"]),
                             images(phase, session, gate, "imagery cold" if cold else "imagery stored",
                                    views[view][1], headers, cached))
        if cold:
            phase.done.append(view)
        phase.moves += 1
        await think(phase, rng)


async def run(phase: Phase) -> None:
    spec = phase.spec
    connector = aiohttp.TCPConnector(limit=spec["concurrency"] * BROWSER_CONNECTIONS,
                                     keepalive_timeout=IDLE_KEEPALIVE_S)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:
        phase.started = time.perf_counter()
        rng = random.Random(spec["seed"])
        if spec["kind"] == "map":
            loops = [browsing(phase, session, i, random.Random(rng.random())) for i in range(spec["concurrency"])]
        else:
            queue = list(reversed(range(len(spec["views"]))))  # pop() takes from the end: zooms keep taking turns
            loops = [imagery_views(phase, session, i, random.Random(rng.random()), queue)
                     for i in range(spec["concurrency"])]
        await asyncio.gather(clock(phase), *loops)


def main(argv: list[str]) -> int:
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    phase = Phase(json.loads(spec_path.read_text()))
    asyncio.run(run(phase))
    result_path.write_text(json.dumps({
        "latencies": phase.latencies, "sizes": {k: sum(v) / len(v) for k, v in phase.sizes.items() if v},
        "aggregated": dict(phase.aggregated), "statuses": dict(phase.statuses), "errors": dict(phase.errors),
        "moves": phase.moves, "cpu_s": phase.cpu_s, "done": phase.done}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
