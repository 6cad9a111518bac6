"""Event streams: exact dense <-> events round trips, .npz files, errors."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from spikingbrain.coding import (
    SpikeEvents,
    encode,
    from_events,
    load_events,
    save_events,
    to_events,
)


@st.composite
def spike_trains(draw):
    shape = draw(st.lists(st.integers(0, 4), min_size=1, max_size=4))
    n = int(np.prod(shape))
    vals = draw(st.lists(st.sampled_from([-1, 0, 0, 1]), min_size=n, max_size=n))
    return torch.tensor(vals, dtype=torch.int8).reshape(shape)


@given(spikes=spike_trains())
def test_dense_events_roundtrip(spikes):
    ev = to_events(spikes)
    assert len(ev) == int((spikes != 0).sum())
    assert ev.shape == tuple(spikes.shape)
    back = from_events(ev)
    assert back.dtype == torch.int8 and torch.equal(back, spikes)


@given(spikes=spike_trains())
def test_npz_roundtrip(spikes, tmp_path_factory):
    path = tmp_path_factory.mktemp("ev") / "events.npz"
    ev = to_events(spikes, scheme="ternary")
    save_events(ev, path)
    back = load_events(path)
    assert back.shape == ev.shape and back.scheme == "ternary"
    assert torch.equal(back.to_dense(), spikes)


def test_events_are_time_ordered_from_an_encoded_train():
    spikes = encode(torch.tensor([[5, -3], [0, 7]]), "bitwise_bidirectional")
    ev = to_events(spikes, "bitwise_bidirectional")
    assert torch.all(ev.times[1:] >= ev.times[:-1])
    assert set(ev.polarity.tolist()) <= {-1, 1}


def test_invalid_event_lists_are_rejected():
    t = torch.tensor([0, 0])
    with pytest.raises(ValueError, match="sorted"):
        SpikeEvents(t, torch.tensor([1, 1]), torch.tensor([1, 1], dtype=torch.int8), (2, 3))
    with pytest.raises(ValueError, match=r"times must lie in \[0, 2\)"):
        SpikeEvents(torch.tensor([2]), torch.tensor([0]), torch.tensor([1], dtype=torch.int8), (2, 3))
    with pytest.raises(ValueError, match="indices must lie"):
        SpikeEvents(torch.tensor([0]), torch.tensor([3]), torch.tensor([1], dtype=torch.int8), (2, 3))
    with pytest.raises(ValueError, match="non-zero polarity"):
        SpikeEvents(torch.tensor([0]), torch.tensor([0]), torch.tensor([0], dtype=torch.int8), (2, 3))
    with pytest.raises(TypeError, match="int8"):
        SpikeEvents(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]), (2, 3))
    with pytest.raises(ValueError, match="one entry per event"):
        SpikeEvents(torch.tensor([0]), torch.tensor([0, 1]), torch.tensor([1], dtype=torch.int8), (2, 3))


def test_corrupt_foreign_and_newer_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a readable"):
        load_events(bad)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.arange(3))
    with pytest.raises(ValueError, match="not a spikingbrain event file"):
        load_events(foreign)
    ev = to_events(torch.ones(2, 2, dtype=torch.int8))
    path = save_events(ev, tmp_path / "ok.npz")
    with np.load(path) as d:
        fields = dict(d)
    fields["version"] = np.array(99)
    np.savez(tmp_path / "newer.npz", **fields)
    with pytest.raises(ValueError, match="upgrade spikingbrain"):
        load_events(tmp_path / "newer.npz")
    with pytest.raises(ValueError, match=".npz suffix"):
        save_events(ev, tmp_path / "events.bin")


def test_failed_save_leaves_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.npz"
    save_events(to_events(torch.ones(1, 2, dtype=torch.int8)), path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError, match="disk full"):
        save_events(to_events(torch.zeros(1, 2, dtype=torch.int8)), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.npz"]


@pytest.mark.parametrize("field, value, match", [
    ("polarity", np.array([257, 1], dtype=np.int64), "outside int8"),
    ("polarity", np.array([1.0, -1.0]), "integer array"),
    ("times", np.array([[0, 1]]), "1-D integer array"),
])
def test_out_of_range_or_mistyped_event_fields_never_wrap(tmp_path, field, value, match):
    ev = to_events(torch.tensor([[1, -1]], dtype=torch.int8))
    path = save_events(ev, tmp_path / "ok.npz")
    with np.load(path) as d:
        fields = dict(d)
    fields[field] = value
    np.savez(tmp_path / "bad.npz", **fields)
    with pytest.raises(ValueError, match=match):
        load_events(tmp_path / "bad.npz")


def test_renamed_npy_and_directory_are_clear_errors(tmp_path):
    np.save(tmp_path / "arr.npy", np.arange(4))
    (tmp_path / "arr.npy").rename(tmp_path / "renamed.npz")
    with pytest.raises(ValueError, match="single numpy array"):
        load_events(tmp_path / "renamed.npz")
    with pytest.raises(ValueError, match="is a directory"):
        load_events(tmp_path)
