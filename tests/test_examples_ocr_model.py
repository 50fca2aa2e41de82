"""The DBNet model and loss: shapes, and that a few steps of training reduce the loss."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from trainperf.examples.ocr.data import PageDataset, collate_pages  # noqa: E402
from trainperf.examples.ocr.loss import db_loss  # noqa: E402
from trainperf.examples.ocr.model import DBNet, ModelConfig  # noqa: E402
from trainperf.examples.ocr.synth import PageSpec  # noqa: E402


def batch(count: int = 4, *, with_maps: bool = True):
    dataset = PageDataset(
        count=count, seed=3, spec=PageSpec(height=96, width=96), with_maps=with_maps, fast_maps=True
    )
    return collate_pages([dataset[i] for i in range(count)], fast_maps=True)


def test_output_shapes_in_train_and_eval() -> None:
    model = DBNet(ModelConfig(widths=(8, 8, 16, 16), neck=16))
    images = torch.rand(2, 3, 96, 128)
    out = model.train()(images)
    assert set(out) == {"probability", "threshold", "binary"}
    assert all(v.shape == (2, 1, 96, 128) for v in out.values())
    with torch.no_grad():
        assert set(model.eval()(images)) == {"probability"}


def test_collate_builds_missing_maps_exactly_like_getitem() -> None:
    with_maps, without = batch(with_maps=True), batch(with_maps=False)
    assert torch.equal(with_maps.images, without.images)
    assert set(with_maps.maps) == {"shrink", "shrink_mask", "threshold", "threshold_mask"}
    for key in with_maps.maps:
        # allclose, not equal: equal inputs have been seen to differ in the last bit
        # (3e-8) between calls, depending on what ran before in the process.
        assert torch.allclose(with_maps.maps[key], without.maps[key], atol=1e-6)


def test_loss_falls_when_overfitting_one_batch() -> None:
    torch.manual_seed(0)
    data = batch()
    model = DBNet(ModelConfig(widths=(8, 16, 16, 32), neck=16)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = db_loss(model(data.images), data.maps)["loss"]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.6 * losses[0]


def test_dataset_rejects_out_of_range_pages() -> None:
    dataset = PageDataset(
        count=2, seed=0, spec=PageSpec(height=64, width=64), with_maps=False, fast_maps=True
    )
    with pytest.raises(IndexError, match=r"page 2 out of range 0\.\.1"):
        dataset[2]


def test_cached_pages_are_the_built_pages_and_built_once(tmp_path) -> None:
    spec = PageSpec(height=64, width=64)
    plain = PageDataset(count=3, seed=1, spec=spec, with_maps=True, fast_maps=True)
    cached = PageDataset(
        count=3, seed=1, spec=spec, with_maps=False, fast_maps=True, cache_dir=tmp_path / "c"
    )
    for index in range(3):
        expected, got = plain[index], cached[index]
        assert torch.equal(expected.image, got.image)
        assert len(expected.polygons) == len(got.polygons)
        for a, b in zip(expected.polygons, got.polygons, strict=True):
            assert (a == b).all()
        assert expected.maps is not None
        assert got.maps is not None
        assert expected.maps.keys() == got.maps.keys()
        for name in expected.maps:
            assert torch.equal(expected.maps[name], got.maps[name]), name
    entries = sorted((tmp_path / "c" / "entries").glob("*/*.tpc"))
    assert len(entries) == 3
    stamps = [e.stat().st_mtime_ns for e in entries]
    again = PageDataset(
        count=3, seed=1, spec=spec, with_maps=False, fast_maps=True, cache_dir=tmp_path / "c"
    )
    assert again[2].maps is not None
    assert [e.stat().st_mtime_ns for e in entries] == stamps  # read, not rebuilt
    assert again.cache is not None
    assert again.cache.explain_miss(2).startswith("hit")
    other = PageDataset(
        count=3, seed=1, spec=spec, with_maps=False, fast_maps=False, cache_dir=tmp_path / "c"
    )
    assert other.cache is not None
    assert other.cache.explain_miss(2).startswith("miss")  # the reference maps: another key
