"""torch half precision: op probe, FP32 → FP16 transfer, pure and mixed training steps with loss scaling."""
import pytest
import torch
from torch import nn

from thinlab.precision import DynamicLossScaler
from thinlab.nn.half import (
    HalfStep, half_cast_report, half_step_fn, half_train_step, probe_cpu_half_ops, to_half, transfer_fp32_to_fp16,
)


class Tiny(nn.Module):
    """conv → batch norm → LSTM → linear on (B, 10, 8) features: every layer kind the course uses."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.lstm, self.fc = nn.LSTM(32, 16, batch_first=True), nn.Linear(16, 3)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x[:, None])))  # (B, 4, 10, 8)
        h = h.permute(0, 2, 1, 3).reshape(x.shape[0], 10, 32)  # (B, 10, 4, 8) → (B, 10, 32)
        return self.fc(self.lstm(h)[0][:, -1])


@pytest.fixture()
def data():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3
    return torch.randn(60, 10, 8, generator=g) + 0.5 * y[:, None, None].float(), y


def _model():
    torch.manual_seed(0)
    return Tiny()


def test_probe_reports_what_works_on_this_cpu():
    ops = probe_cpu_half_ops()
    for op in ("conv2d", "conv2d_backward", "max_pool2d", "linear", "linear_backward", "batch_norm", "lstm",
               "lstm_backward", "softmax", "cross_entropy", "cross_entropy_backward", "sgd_momentum_step"):
        assert ops[op] is True, op
    assert ops["adam_step_default_eps"] is False  # eps=1e-8 rounds to 0 in float16: NaN
    assert all(isinstance(v, bool) for v in ops.values())
    with pytest.raises(ValueError, match=r"dtype=torch.float32 must be torch.float16 or torch.bfloat16"):
        probe_cpu_half_ops(dtype=torch.float32)


def test_to_half_copies_and_casts_inputs(data):
    x, _ = data
    m = _model().eval()
    h = to_half(m)
    assert all(p.dtype == torch.float16 for p in h.parameters()) and h.bn.running_var.dtype == torch.float16
    assert h.bn.num_batches_tracked.dtype == torch.int64
    assert all(p.dtype == torch.float32 for p in m.parameters())  # the original is untouched
    out = h(x)  # float32 features go in
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), m(x), atol=2e-2, rtol=2e-2)
    assert to_half(m, dtype=torch.bfloat16).fc.weight.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="must be torch.float16 or torch.bfloat16"):
        to_half(m, dtype=torch.float64)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module; got dict"):
        to_half({})


def test_transfer_and_report():
    m = _model()
    with torch.no_grad():
        m.fc.weight[0, 0] = 1e-9  # flushes to 0 in float16
    h = transfer_fp32_to_fp16(m)
    assert h.fc.weight.dtype == torch.float16 and h.fc.weight[0, 0].item() == 0.0
    rows = {r["name"]: r for r in half_cast_report(m)}
    assert rows["fc.weight"]["underflow_fraction"] == pytest.approx(1 / m.fc.weight.numel())
    assert rows["fc.weight"]["max_abs_error"] < 1e-3 and rows["fc.weight"]["overflow"] == 0
    with torch.no_grad():
        m.fc.bias[1] = 1e5
    with pytest.raises(ValueError, match=r"fc.bias has 1 value\(s\) beyond the torch.float16 range .* use dtype=torch.bfloat16"):
        transfer_fp32_to_fp16(m)
    assert transfer_fp32_to_fp16(m, dtype=torch.bfloat16).fc.bias.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="expected an FP32 model: call .float"):
        transfer_fp32_to_fp16(to_half(_model()))


@pytest.mark.parametrize("mode", ["mixed", "pure"])
def test_a_few_steps_reduce_the_loss(data, mode):
    m = _model()
    if mode == "pure":
        m = to_half(m)
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    else:
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    scaler = DynamicLossScaler()
    steps = [half_train_step(m, data, opt, scaler, mode=mode) for _ in range(12)]
    assert isinstance(steps[0], HalfStep) and steps[0].logits.dtype == torch.float32
    assert steps[-1].loss < 0.9 * steps[0].loss
    assert not any(s.skipped for s in steps) and scaler.n_updates_ == 12
    dtype = torch.float16 if mode == "pure" else torch.float32
    assert all(p.dtype == dtype for p in m.parameters())
    assert m.bn.running_mean.dtype == dtype and m.bn.num_batches_tracked.item() == 12  # stats updated


@pytest.mark.parametrize("mode", ["mixed", "pure"])
def test_induced_overflow_is_skipped_and_scale_backs_off(data, mode):
    m = _model()
    if mode == "pure":
        m = to_half(m)
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    # any gradient scaled by 1e30 overflows float16; a steep backoff makes the recovery short
    scaler = DynamicLossScaler(init_scale=1e30, backoff_factor=1e-10)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    step = half_train_step(m, data, opt, scaler, mode=mode)
    assert step.skipped and scaler.scale_ == pytest.approx(1e20) and scaler.n_skipped_ == 1
    assert all(torch.equal(p, before[n]) for n, p in m.named_parameters())
    assert all(p.grad is None for p in m.parameters()) and not opt.state  # no step was taken
    skipped = [half_train_step(m, data, opt, scaler, mode=mode).skipped for _ in range(3)]
    assert skipped == [True, True, False]  # 1e20 and 1e10 still overflow, 1 fits
    assert scaler.scale_ == pytest.approx(1.0) and opt.state
    assert not all(torch.equal(p, before[n]) for n, p in m.named_parameters())


def test_step_fn_matches_fit_contract(data):
    m = _model()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    loss, logits, skipped = half_step_fn(DynamicLossScaler(), mode="mixed")(m, *data, opt)
    assert isinstance(loss, float) and logits.shape == (60, 3) and skipped is False


def test_bad_arguments(data):
    m, h = _model(), to_half(_model())
    sc = DynamicLossScaler()
    with pytest.raises(ValueError, match="mode='pure' trains a half model but its parameters are"):
        half_train_step(m, data, torch.optim.SGD(m.parameters(), lr=0.1), sc, mode="pure")
    with pytest.raises(ValueError, match="mode='mixed' keeps FP32 master weights"):
        half_train_step(h, data, torch.optim.SGD(h.parameters(), lr=0.1), sc, mode="mixed")
    with pytest.raises(ValueError, match=r"optimizer eps=1e-08 rounds to 0 in torch.float16.*eps=1e-4"):
        half_train_step(h, data, torch.optim.Adam(h.parameters()), sc, mode="pure")
    with pytest.raises(ValueError, match="not this model's parameters"):
        half_train_step(h, data, torch.optim.SGD(m.parameters(), lr=0.1), sc, mode="pure")
    with pytest.raises(ValueError, match="mode='fp16'; choose 'pure'"):
        half_train_step(m, data, torch.optim.SGD(m.parameters(), lr=0.1), sc, mode="fp16")
    with pytest.raises(TypeError, match="loss_scaler must be a thinlab.precision.DynamicLossScaler"):
        half_train_step(m, data, torch.optim.SGD(m.parameters(), lr=0.1), 2.0 ** 16)
    with pytest.raises(TypeError, match=r"batch must be a pair of tensors \(x, y\)"):
        half_train_step(m, data[0], torch.optim.SGD(m.parameters(), lr=0.1), sc)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        half_train_step(m, data, None, sc)
