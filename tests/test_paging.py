"""Pages of a whole trial's attention and interpretation over real HTTP (issue 14): a real capture of
the tiny llama long enough to page, a real uvicorn server whose page budget is lowered for the test,
and the library's whole-trial answers (``spectra_vis.analysis``) as the reference."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from spectra_vis import analysis
from spectra_vis.store.capture_file import Capture

WHOLE_FORMS = [  # /api/attention query parameters of a whole trial (no step, no token)
    {"layer": 0},
    {},
    {"layer": 1, "head": 2},
    {"layer": 0, "target": 0},
]
RANGE_KEYS = ("start", "stop", "next", "next_pos")


@pytest.fixture(scope="module")
def long_path(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from spectra_vis import capture

    out = tmp_path_factory.mktemp("paging") / "long.json"
    capture(tiny_llama, ["the cat sat on the mat and then"], preset="standard", max_tokens=40, out=out, n_ctx=128)
    return out


@pytest.fixture(scope="module")
def cap(long_path: Path) -> Capture:
    c = Capture.load(long_path, vectors=False)
    assert len(c.data["trials"][0]["steps"]) >= 20, "the capture must be long enough to page"
    return c


def _size(payload: Any) -> int:
    return len(orjson.dumps({"capture_id": "c999", **payload}))


@pytest.fixture(scope="module")
def budget(cap: Capture) -> int:
    """The attention server's: half the prefill's page at every layer (the prompt's step is split
    between pages by its tokens), and at least a little over any one query token's page."""
    trial = cap.data["trials"][0]
    prefill = _size(analysis.attention(cap, 0, start=0, stop=1))
    one = [_size(analysis.attention(cap, 0, start=0, stop=len(trial["steps"]), positions=(q, q + 1), **f))
           for f in WHOLE_FORMS for q in range(len(trial["tokens"]["ids"]))]  # fmt: skip
    return max(prefill // 2, int(1.2 * max(one)))


@pytest.fixture(scope="module")
def interp_budget(cap: Capture) -> int:
    """The interpretation server's: three times its largest one-step page."""
    n = len(cap.data["trials"][0]["steps"])
    pages = [analysis.interpretation(cap, 0, start=j, stop=j + 1, delta=d) for d in (True, False) for j in range(n)]
    one = [_size(p) for p in pages]
    return 3 * max(one)


def _serve(data: Path, page_bytes: int) -> Iterator[httpx.Client]:
    from backend.server import create_app
    from tests.test_backend import serve

    with serve(create_app(data, page_bytes=page_bytes), timeout=60) as c:
        c.post("/api/load", json={"filepath": "long.json"}).raise_for_status()
        yield c


@pytest.fixture(scope="module")
def data(long_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("paging-data")
    (d / "long.json").write_bytes(long_path.read_bytes())
    return d


@pytest.fixture(scope="module")
def client(data: Path, budget: int) -> Iterator[httpx.Client]:
    yield from _serve(data, budget)


@pytest.fixture(scope="module")
def interp_client(data: Path, interp_budget: int) -> Iterator[httpx.Client]:
    yield from _serve(data, interp_budget)


def _plain(payload: Any) -> Any:
    """As JSON gives it back (floats, NaN as null, tuples as lists)."""
    return orjson.loads(orjson.dumps(payload))


def _pages(client: httpx.Client, url: str, params: dict[str, Any], budget: int) -> list[dict[str, Any]]:
    """Every page of a whole-trial answer, asking from each page's next (and next_pos)."""
    pages: list[dict[str, Any]] = []
    start, pos = 0, None
    while True:
        r = client.get(url, params={**params, **({"start": start} if start else {}), **({"pos": pos} if pos else {})})
        assert r.status_code == 200, r.text
        assert len(r.content) <= budget, f"a page of {len(r.content)} bytes, over the budget of {budget}"
        page = r.json()
        assert page["start"] == start
        pages.append(page)
        if page["next"] is None:
            assert page["stop"] == page["n_steps"] and page.get("next_pos") is None
            return pages
        assert page["next"] in (page["stop"], page["stop"] - 1)  # a step split between pages: its rest
        assert (page.get("next_pos") is not None) == (page["next"] == page["stop"] - 1)
        start, pos = page["next"], page.get("next_pos")


@pytest.mark.parametrize("form", WHOLE_FORMS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()) or "all")
def test_attention_pages_join_to_the_whole_trial(client: httpx.Client, cap: Capture, budget: int, form: dict) -> None:
    whole = _plain(analysis.attention(cap, 0, **form))
    assert (whole["start"], whole["stop"], whole["next"]) == (0, whole["n_steps"], None)  # the library: whole
    pages = _pages(client, "/api/attention", {"trial_id": 0, **form}, budget)
    if _size(whole) > budget:
        assert len(pages) >= 2
    joined = [t for p in pages for t in p["tokens"]]
    assert joined == whole["tokens"]
    assert len({t["pos"] for t in joined}) == len(joined)
    for p in pages:
        assert {k: v for k, v in p.items() if k not in (*RANGE_KEYS, "tokens", "capture_id")} == {
            k: v for k, v in whole.items() if k not in (*RANGE_KEYS, "tokens")
        }
        assert all(p["start"] <= t["step"] < p["stop"] for t in p["tokens"])


def test_a_step_larger_than_the_budget_is_split_by_its_tokens(client: httpx.Client, cap: Capture, budget: int) -> None:
    """The prompt's step at every layer is twice the budget: its tokens come in several pages."""
    trial = cap.data["trials"][0]
    assert _size(analysis.attention(cap, 0, start=0, stop=1)) > budget
    pages = _pages(client, "/api/attention", {"trial_id": 0}, budget)
    first = [p for p in pages if p["start"] == 0]
    assert len(first) >= 2 and first[0]["next"] == 0 and first[0]["next_pos"] == len(first[0]["tokens"])
    assert [t["pos"] for p in first for t in p["tokens"] if t["step"] == 0] == list(range(trial["tokens"]["n_prompt"]))


def test_the_forms_that_must_page_do(cap: Capture, budget: int, interp_budget: int) -> None:
    """The tests are only worth something if the whole trial is over the budget for the big forms."""
    assert _size(analysis.attention(cap, 0, layer=0)) > 2 * budget
    assert _size(analysis.interpretation(cap, 0)) > 2 * interp_budget


@pytest.mark.parametrize("delta", [True, False])
def test_interpretation_pages_join_to_the_whole_trial(
    interp_client: httpx.Client, cap: Capture, interp_budget: int, delta: bool
) -> None:
    whole = _plain(analysis.interpretation(cap, 0, delta=delta))
    pages = _pages(interp_client, "/api/trials/0/interpretation", {"delta": str(delta).lower()}, interp_budget)
    if delta:
        assert len(pages) >= 2
    assert [z for p in pages for z in p["zones"]] == whole["zones"]
    assert [s for p in pages for s in p["states"]] == whole["states"]
    assert [s["step"] for p in pages for s in p["states"]] == list(range(whole["n_steps"]))
    for p in pages:
        assert p["zone_distribution"] == whole["zone_distribution"] and p["dominant_zone"] == whole["dominant_zone"]


def test_an_explicit_range_is_sent_whole(client: httpx.Client, cap: Capture, budget: int) -> None:
    n = len(cap.data["trials"][0]["steps"])
    r = client.get("/api/attention", params={"trial_id": 0, "layer": 0, "start": 0, "stop": n})
    assert r.status_code == 200 and len(r.content) > budget  # the client asked for it
    assert r.json()["tokens"] == _plain(analysis.attention(cap, 0, layer=0))["tokens"]
    assert r.json()["next"] is None
    r = client.get("/api/attention", params={"trial_id": 0, "layer": 0, "start": 3, "stop": 5})
    assert {t["step"] for t in r.json()["tokens"]} == {3, 4} and r.json()["next"] == 5


def test_a_short_trial_comes_whole_in_one_page(
    tiny_capture_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With the server's default budget, a short trial's whole-trial forms are one page."""
    from backend.server import create_app
    from tests.test_backend import serve

    data = tmp_path_factory.mktemp("short-data")
    (data / "short.json").write_bytes(tiny_capture_path.read_bytes())
    short = Capture.load(tiny_capture_path, vectors=False)
    with serve(create_app(data)) as c:
        c.post("/api/load", json={"filepath": "short.json"}).raise_for_status()
        for trial in range(len(short.data["trials"])):
            att = c.get("/api/attention", params={"trial_id": trial}).json()
            assert (att["start"], att["stop"], att["next"]) == (0, att["n_steps"], None)
            assert att["tokens"] == _plain(analysis.attention(short, trial))["tokens"]
            interp = c.get(f"/api/trials/{trial}/interpretation").json()
            assert (interp["start"], interp["stop"], interp["next"]) == (0, interp["n_steps"], None)
            assert interp["states"] == _plain(analysis.interpretation(short, trial))["states"]


@pytest.mark.parametrize(
    ("url", "params", "words"),
    [
        ("/api/attention", {"start": 999}, ["start=999", "0 <= start <="]),
        ("/api/attention", {"start": 5, "stop": 2}, ["stop=2", "start <= stop"]),
        ("/api/attention", {"step": 1, "start": 2}, ["without step and token"]),
        ("/api/attention", {"token": 3, "stop": 9}, ["without step and token"]),
        ("/api/attention", {"step": 2, "pos": 2}, ["without step and token"]),
        ("/api/attention", {"start": 1, "pos": 0}, ["pos=0", "step 1"]),
        ("/api/attention", {"start": 0, "pos": 500}, ["pos=500", "step 0"]),
        ("/api/trials/0/interpretation", {"start": 999}, ["start=999", "0 <= start <="]),
        ("/api/trials/0/interpretation", {"start": 999, "stop": 1000}, ["start=999"]),
        ("/api/trials/0/interpretation", {"start": 5, "stop": 2}, ["stop=2", "start <= stop"]),
    ],
)
def test_bad_ranges_are_400_in_one_line(client: httpx.Client, url: str, params: dict, words: list[str]) -> None:
    r = client.get(url, params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["ok"] is False and body["status"] == 400
    assert "\n" not in body["error"] and all(w in body["error"] for w in words), body["error"]


def test_start_at_the_end_is_an_empty_last_page(client: httpx.Client, cap: Capture) -> None:
    n = len(cap.data["trials"][0]["steps"])
    att = client.get("/api/attention", params={"layer": 0, "start": n}).json()
    assert (att["start"], att["stop"], att["next"], att["tokens"]) == (n, n, None, [])
    interp = client.get("/api/trials/0/interpretation", params={"start": n}).json()
    assert (interp["start"], interp["stop"], interp["next"], interp["states"]) == (n, n, None, [])


def test_ranges_without_the_digest_columns(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A capture of whole attention rows has no attention columns in its digest: a range reads its
    steps, and the ranges still join to the whole trial."""
    from spectra_vis import capture

    out = tmp_path_factory.mktemp("paging-full") / "full.json"
    capture(tiny_llama, ["one two three four five"], preset="standard", max_tokens=6, out=out, n_ctx=128,
            full_attention=True, top_k=4)  # fmt: skip
    full = Capture.load(out, vectors=False)
    whole = _plain(analysis.attention(full, 0, layer=0))
    n = whole["n_steps"]
    assert n >= 4
    parts = [_plain(analysis.attention(full, 0, layer=0, start=a, stop=min(a + 2, n))) for a in range(0, n, 2)]
    assert [t for p in parts for t in p["tokens"]] == whole["tokens"]
    assert [p["next"] for p in parts] == [*range(2, n, 2), None]
