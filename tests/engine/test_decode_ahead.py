"""The decode thread starts its workers before the plan is known, then decodes what it is fed."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from embedstore import modalities
from embedstore.ingest.pipeline import DecodeAhead
from embedstore.ingest.plan import Group
from embedstore.ingest.walk import walk


def _groups(library: Path) -> list[Group]:
    entries, _ = walk([library])
    return [Group(f"h{i}", e) for i, e in enumerate(entries) if e.modality == "vision"]


def test_workers_started_before_the_groups_decode_them_when_fed(library: Path) -> None:
    ahead = DecodeAhead(None, 1, 4)
    ahead.start()
    time.sleep(0.2)  # the caller is hashing; nothing to decode yet
    groups = _groups(library)
    ahead.feed(groups)
    results = {g.leader.uri: r for g, r in ahead}
    assert set(results) == {g.leader.uri for g in groups} and len(groups) == 3
    for uri, tensor in results.items():  # PNGs: an exact transform (tests/tolerances.py)
        assert torch.equal(tensor, modalities.load("vision", Path(uri)))
    assert not ahead.is_alive()


def test_a_decoder_never_fed_shuts_down_when_cancelled() -> None:
    ahead = DecodeAhead(None, 1, 4)
    ahead.start()
    ahead.cancel()
    ahead.join(30)
    assert not ahead.is_alive() and ahead.error is None


def test_groups_given_up_front_need_no_feed(library: Path) -> None:
    groups = _groups(library)
    assert {g.leader.uri for g, _ in DecodeAhead(groups, 0, 2)} == {g.leader.uri for g in groups}
