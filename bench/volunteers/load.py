"""The load generator: `python -m bench.volunteers.load SPEC.json RESULT.json`, one phase per run.

It runs in its own process (one asyncio event loop, aiohttp, no Django), so that it can
use at most one of the machine's two cores and the server keeps the other; the parent
process prints how much CPU it took. A phase is one of:

- "volunteers": each simulated volunteer loops POST tasks/next/ -> POST classifications/
  -> an exponential think time (mean think_s; 0 = saturation). Volunteers start spread
  over the first think time, so the phase begins near its steady state.
- "floor": the same loop on the floor's two views (bench/volunteers/floor.py), whose URLs
  differ from the API's only in their prefix (spec "api").
- "json": GET /bench/json/ in a closed loop (the trivial-view ceiling).
- "vote": POST /bench/vote/ in a closed loop (the bare-vote-view ceiling).

Requests completed in [warmup_s, warmup_s + measure_s] count for the rates and latencies.
When the window ends no new request pair starts, but a pair under way finishes, so no vote
is cut off between the server's commit and the client's hearing of it: every 201 the
server sent is in the result, which the parent compares with the database. The lines
"window-start" and "window-end" on stdout tell the parent when to sample /proc.
"""

import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

TIMEOUT_S = 120.0  # per request: long enough that no vote is lost to a client-side timeout
IDLE_KEEPALIVE_S = 1.0  # under gunicorn's keepalive (2 s), so the client never reuses a connection being closed


@dataclass
class Phase:
    """What the parent asked for (the spec file), and what was seen."""

    spec: dict[str, Any]
    started: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"next": [], "submit": [], "json": [],
                                                                        "vote": []})
    statuses: Counter = field(default_factory=Counter)  # "endpoint status" -> count, whole phase
    errors: Counter = field(default_factory=Counter)  # "endpoint ExceptionName" -> count
    retries: Counter = field(default_factory=Counter)  # requests sent again after a dropped connection
    window_votes: int = 0  # 201s of the volunteers' submit, or of the bare vote view, in the window
    window_requests: int = 0
    stored: list[tuple[int, int]] = field(default_factory=list)  # (volunteer, tile) told stored, whole phase
    handed: list[tuple[int, int]] = field(default_factory=list)  # (volunteer, tile) of every 200 on next
    replays: int = 0  # submits answered 200 with the stored vote
    nothing_left: int = 0  # volunteers that got 204 and stopped
    cpu_s: float = 0.0  # this process's CPU time in the window

    @property
    def window(self) -> tuple[float, float]:
        start = self.started + self.spec["warmup_s"]
        return start, start + self.spec["measure_s"]

    def record(self, endpoint: str, sent: float, status: int) -> None:
        done = time.perf_counter()
        self.statuses[f"{endpoint} {status}"] += 1
        start, end = self.window
        if start <= done < end:
            self.latencies[endpoint].append((done - sent) * 1000)
            self.window_requests += 1
            self.window_votes += status == 201


async def request(phase: Phase, session: aiohttp.ClientSession, endpoint: str, method: str, url: str,
                  **kwargs: Any) -> tuple[int, Any]:
    """One request, timed to the end of its body; (0, None) when it failed in transport.

    A connection the server closed or reset before answering (a keep-alive connection it
    dropped as idle, or as its worker was recycled) is retried once on another, as browsers
    do; the retry is counted, and timed from the first attempt. A timeout is never retried:
    the server may have done the work.
    """
    sent = time.perf_counter()
    for attempt in (1, 2):
        try:
            async with session.request(method, url, **kwargs) as response:
                body = await response.read()
                status = response.status
            break
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            if attempt == 2:
                phase.errors[f"{endpoint} {type(exc).__name__}"] += 1
                return 0, None
            phase.retries[f"{endpoint} {type(exc).__name__}"] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            phase.errors[f"{endpoint} {type(exc).__name__}"] += 1
            return 0, None
    phase.record(endpoint, sent, status)
    return status, (json.loads(body) if status in (200, 201) and body else None)


async def volunteer(phase: Phase, session: aiohttp.ClientSession, index: int, rng: random.Random) -> None:
    spec = phase.spec
    user_id, token = spec["volunteers"][index]
    headers = {"Authorization": f"Token {token}"}
    base, think = spec["base_url"] + spec["api"], spec["think_s"]
    end = phase.window[1]
    await asyncio.sleep(rng.uniform(0, think if think > 0 else 0.5))
    while time.perf_counter() < end:
        status, task = await request(phase, session, "next", "POST",
                                     f"{base}/projects/{spec['slug']}/tasks/next/", headers=headers)
        if status == 204:
            phase.nothing_left += 1
            return
        if status == 200:
            tile, size = task["tile"]["id"], task["tile"]["size"]
            phase.handed.append((user_id, tile))
            answer = rng.choice(spec["answers"])
            marks = [{"x": round(rng.uniform(0, size), 1), "y": round(rng.uniform(0, size), 1)}
                     for _ in range(rng.randint(1, 3) if answer["damage"] else 0)]
            status, _ = await request(phase, session, "submit", "POST", f"{base}/tiles/{tile}/classifications/",
                                      headers=headers, json={"answer": answer["key"], "marks": marks,
                                                             "seconds": spec["seconds"]})
            if status in (200, 201):  # 200: a retried submit whose first attempt had been stored
                phase.stored.append((user_id, tile))
                phase.replays += status == 200
        if think > 0 or status not in (200, 201):
            pause = rng.expovariate(1 / think) if think > 0 else 0.1  # an error: do not spin on it
            await asyncio.sleep(max(0.0, min(pause, end - time.perf_counter())))


async def ceiling(phase: Phase, session: aiohttp.ClientSession, index: int) -> None:
    """A closed loop on one ceiling view; bare votes use (volunteer, tile) pairs unique over the run."""
    spec = phase.spec
    base, tiles, end = spec["base_url"], spec["tiles"], phase.window[1]
    sent = 0
    while time.perf_counter() < end:
        if spec["kind"] == "json":
            await request(phase, session, "json", "GET", f"{base}/bench/json/")
        else:
            volunteer_id = spec["vote_offset"] + index + spec["concurrency"] * (sent // len(tiles))
            status, _ = await request(phase, session, "vote", "POST", f"{base}/bench/vote/",
                                      json={"volunteer": volunteer_id, "tile": tiles[sent % len(tiles)],
                                            "answer": "destroyed"})
            if status == 201:
                phase.stored.append((volunteer_id, tiles[sent % len(tiles)]))
        sent += 1


async def clock(phase: Phase) -> None:
    """Tell the parent when the window starts and ends, and take this process's CPU time over it."""
    start, end = phase.window
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    cpu = time.process_time()
    print("window-start", flush=True)
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    phase.cpu_s = time.process_time() - cpu
    print("window-end", flush=True)


async def run(phase: Phase) -> None:
    spec = phase.spec
    connector = aiohttp.TCPConnector(limit=spec["concurrency"], keepalive_timeout=IDLE_KEEPALIVE_S)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:
        phase.started = time.perf_counter()
        rng = random.Random(spec["seed"])
        if spec["kind"] in ("volunteers", "floor"):
            loops = [volunteer(phase, session, i, random.Random(rng.random())) for i in range(spec["concurrency"])]
        else:
            loops = [ceiling(phase, session, i) for i in range(spec["concurrency"])]
        await asyncio.gather(clock(phase), *loops)


def main(argv: list[str]) -> int:
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    phase = Phase(json.loads(spec_path.read_text()))
    asyncio.run(run(phase))
    result = {
        "latencies": phase.latencies, "statuses": dict(phase.statuses), "errors": dict(phase.errors),
        "retries": dict(phase.retries), "replays": phase.replays,
        "window_votes": phase.window_votes, "window_requests": phase.window_requests, "stored": phase.stored,
        "handed": phase.handed, "nothing_left": phase.nothing_left, "cpu_s": phase.cpu_s,
        "drain_s": time.perf_counter() - phase.window[1],
    }
    result_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
