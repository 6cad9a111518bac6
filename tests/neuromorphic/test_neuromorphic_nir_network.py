"""IF / LIF / ALIF networks through NIR: exact round trip, norse and spikingjelly cross-checks,
clear errors for foreign, corrupt or unsupported graphs."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir")

from spikingbrain.neuromorphic.nir_export import to_nir, write_nir
from spikingbrain.neuromorphic.nir_import import from_nir, read_nir, read_nir_data
from spikingbrain.neurons.classic import ALIF, IF, LIF, reset_states

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_neuromorphic_nir_export import assert_same_graph

#: membrane tolerance against other simulators: the LIF update is the same forward-Euler step,
#: written with a different float order (ours: decay*v + dt/tau*(v_leak + r*I); norse:
#: v + dt/tau*(I + v_leak - v); spikingjelly: v + (I - (v - v_reset))/tau)
V_ATOL = 1e-5


def make_net(reset: str = "hard", seed: int = 0) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(5, 8), IF(v_th=1.0, reset=reset, step_mode="m"),
        nn.Linear(8, 6), LIF(tau_mem=5.0, v_th=0.8, reset=reset, step_mode="m"),
        nn.Linear(6, 3, bias=False), LIF(tau_mem=3.0, v_th=0.3, reset=reset, step_mode="m"),
    )
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.9 - 0.15)
                if m.bias is not None:
                    m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.2)
    return net


def inputs(T: int = 60, batch: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand(T, batch, 5, generator=torch.Generator().manual_seed(seed))


def layer_spikes(net: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """Spikes of every neuron layer of our network (multi-step)."""
    reset_states(net)
    out, h = [], x
    with torch.no_grad():
        for m in net:
            h = m(h)
            if isinstance(m, (IF, LIF, ALIF)):
                out.append(h)
    return out


def test_network_round_trip_exact(tmp_path):
    net = make_net("soft")
    net.append(nn.Linear(3, 4))
    net.append(ALIF(tau_mem=4.0, tau_adapt=20.0, beta=torch.linspace(0.1, 0.4, 4), step_mode="m"))
    graph = to_nir(net)
    assert [type(graph.nodes[str(i)]).__name__ for i in range(8)] == [
        "Affine", "IF", "Affine", "LIF", "Linear", "LIF", "Affine", "LIF"]
    write_nir(graph, tmp_path / "net.nir")
    back_graph = read_nir(tmp_path / "net.nir")
    assert_same_graph(graph, back_graph)
    back = from_nir(back_graph)
    assert [type(m).__name__ for m in back] == [type(m).__name__ for m in net]
    assert back[7].params.tau_adapt == 20.0 and torch.equal(back[7].params.beta, net[7].params.beta)
    assert back[1].params == net[1].params  # Python floats come back exactly (float64 arrays)
    x = torch.rand(40, 2, 5, generator=torch.Generator().manual_seed(3))
    reset_states(net)
    assert torch.equal(back(x), net(x))


def test_norse_runs_our_network():
    """norse 1.1 applies from_nir(reset_method=...) to CubaLIF only: its IF and LIF always reset
    to 0, so the cross-check uses reset="hard" with v_reset=0 (NIR's own reset semantics)."""
    norse = pytest.importorskip("norse.torch")
    net = make_net("hard")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # norse warns that LIF r is not 1 where it is 1.0 float64
        model = norse.from_nir(to_nir(net), dt=1.0)
    x = inputs()
    ours = layer_spikes(net, x)
    state, theirs = None, {"1": [], "3": [], "5": []}
    with torch.no_grad():
        for t in range(x.shape[0]):
            _, state = model(x[t], state)
            for k, seq in theirs.items():
                seq.append(state.cache[k])
    for ours_s, k in zip(ours, ("1", "3", "5")):
        assert torch.equal(torch.stack(theirs[k]), ours_s), f"layer {k}: spikes differ"
    assert all(int(s.sum()) > 10 for s in ours), [int(s.sum()) for s in ours]  # all layers fire
    for i, k in zip((1, 3, 5), ("1", "3", "5")):
        np.testing.assert_allclose(state.state[k][0].v.numpy(), net[i].v.numpy(), atol=V_ATOL)


def test_spikingjelly_imports_our_network():
    sj = pytest.importorskip("spikingjelly.activation_based.nir_exchange")
    net = make_net("hard")
    model = sj.import_from_nir(to_nir(net), dt=1.0, step_mode="m")
    x = inputs()
    ours = layer_spikes(net, x)
    with torch.no_grad():
        out, state = model(x, None)
    assert torch.equal(out, ours[-1])
    for i in (1, 3, 5):
        np.testing.assert_allclose(state[str(i)][0].numpy(), net[i].v.numpy(), atol=V_ATOL)


def test_foreign_graph_imports_with_nir_semantics():
    """A graph from another tool (no spikingbrain metadata): hard reset, dt from the argument."""
    w = np.array([[1.0, 0.5], [0.2, 1.2]], dtype=np.float32)
    graph = nir.NIRGraph.from_list(
        nir.Linear(weight=w),
        nir.LIF(tau=np.full(2, 4.0), r=np.ones(2), v_leak=np.zeros(2),
                v_threshold=np.ones(2), v_reset=np.zeros(2)),
    )
    net = from_nir(graph, dt=0.5)
    lif = net[1]
    assert lif.params.reset == "hard" and lif.params.dt == 0.5 and lif.params.tau_mem == 4.0
    assert net(torch.ones(10, 1, 2)).shape == (10, 1, 2)


# ------------------------------------------------------------------ errors


def test_unsupported_node_is_named():
    graph = nir.NIRGraph.from_list(
        nir.Linear(weight=np.ones((2, 2))),
        nir.CubaLIF(tau_syn=np.ones(2), tau_mem=np.ones(2), r=np.ones(2), v_leak=np.zeros(2),
                    v_threshold=np.ones(2)),
    )
    with pytest.raises(ValueError, match="node 'cubalif' has type CubaLIF"):
        from_nir(graph)


def test_branching_graph_rejected():
    lin = nir.Linear(weight=np.ones((2, 2)))
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([2])}), "a": lin,
               "b": nir.Linear(weight=np.ones((2, 2))),
               "output": nir.Output(output_type={"output": np.array([2])})},
        edges=[("input", "a"), ("input", "b"), ("a", "output"), ("b", "output")],
    )
    with pytest.raises(ValueError, match="branches or merges"):
        from_nir(graph)


def test_file_errors(tmp_path):
    h5py = pytest.importorskip("h5py")
    with pytest.raises(FileNotFoundError):
        read_nir(tmp_path / "missing.nir")
    bad = tmp_path / "text.nir"
    bad.write_text("not a graph")
    with pytest.raises(ValueError, match="no HDF5 signature"):
        read_nir(bad)
    foreign = tmp_path / "foreign.nir"
    with h5py.File(foreign, "w") as f:
        f.create_dataset("x", data=[1, 2, 3])
    with pytest.raises(ValueError, match="holds no NIR graph"):
        read_nir(foreign)
    good = tmp_path / "good.nir"
    write_nir(to_nir(make_net()), good)
    truncated = tmp_path / "truncated.nir"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(ValueError, match="corrupt|cannot build"):
        read_nir(truncated)
    unknown = tmp_path / "unknown.nir"
    unknown.write_bytes(good.read_bytes())
    with h5py.File(unknown, "r+") as f:
        del f["node/nodes/3/type"]
        f["node/nodes/3"].create_dataset("type", data="QuantumLIF", dtype=h5py.string_dtype())
    with pytest.raises(ValueError, match="node '3' has type 'QuantumLIF'"):
        read_nir(unknown)
    with pytest.raises(ValueError, match="not a NIR data file|no HDF5"):
        read_nir_data(bad)


def test_nothing_written_half(tmp_path, monkeypatch):
    path = tmp_path / "net.nir"
    write_nir(to_nir(make_net()), path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(nir, "write", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_nir(to_nir(make_net(seed=5)), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.nir"]


def test_missing_nir_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)
    with pytest.raises(ImportError, match=r"pip install 'spikingbrain\[nir\]'"):
        to_nir(make_net())


def test_network_export_errors():
    with pytest.raises(TypeError, match="ReLU has no NIR export"):
        to_nir(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    with pytest.raises(ValueError, match="pass input_size"):
        to_nir(nn.Sequential(LIF()))
    assert type(to_nir(nn.Sequential(LIF()), input_size=3).nodes["0"]).__name__ == "LIF"
    with pytest.raises(ValueError, match="different time steps"):
        to_nir(nn.Sequential(nn.Linear(2, 2), LIF(dt=1.0), nn.Linear(2, 2), LIF(dt=0.5)))
