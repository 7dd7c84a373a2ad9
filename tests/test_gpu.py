"""On CUDA (training's device when there is one) the console and the model give what they give on the CPU.

On the CPU the console's compressors and EQ responses run as compiled kernels; on any other device
they are torch operations (torchcomp, torchlpc), so these tests compare two implementations. Marked
``gpu``: skipped, with the reason, where CUDA is absent.
"""

import pytest
import torch

from core import console
from core.model import MixController, ModelConfig
from core.params import MASTER, TRACK

pytestmark = pytest.mark.gpu

SR = 44100


@pytest.fixture(autouse=True)
def _full_precision():
    """No TF32 (cuDNN convolutions use it by default): compare float32 with float32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _setting(n_batch: int, n_tracks: int, n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_batch, n_tracks, 2, n, generator=gen) * 0.2
    tp = TRACK.from_unit(torch.rand(n_batch, n_tracks, len(TRACK), generator=gen))
    mp = MASTER.from_unit(torch.rand(n_batch, len(MASTER), generator=gen))
    return x, tp, mp


def _rel_db(a: torch.Tensor, b: torch.Tensor) -> float:
    """Level of the difference relative to ``b``, dB."""
    a, b = a.detach(), b.detach()
    return float(20 * torch.log10((a - b).square().mean().sqrt() / b.square().mean().sqrt()))


def test_console_and_its_gradients_agree_on_cuda():
    x, tp, mp = _setting(2, 3, 8000, seed=3)
    tp_cpu, tp_gpu = tp.clone().requires_grad_(), tp.cuda().requires_grad_()
    cpu = console.render(x, tp_cpu, mp, SR)
    gpu = console.render(x.cuda(), tp_gpu, mp.cuda(), SR)
    assert _rel_db(gpu.cpu(), cpu) < -60
    cpu.square().mean().backward()
    gpu.square().mean().backward()
    assert _rel_db(tp_gpu.grad.cpu(), tp_cpu.grad) < -40


def test_model_predicts_the_same_on_cuda():
    torch.manual_seed(0)
    cfg = ModelConfig(sample_rate=SR, n_fft=256, hop=64, n_bands=16, cnn_channels=(4, 8), embed_dim=16,
                      n_layers=2, n_heads=2, ffn_dim=32, dropout=0.0)
    model = MixController(cfg).eval()
    gen = torch.Generator().manual_seed(1)
    tracks = torch.randn(2, 3, 2, 8192, generator=gen) * 0.1
    ref = torch.randn(2, 2, 8192, generator=gen) * 0.1
    with torch.no_grad():
        tu, mu = model(tracks, ref)
        tu_gpu, mu_gpu = model.cuda()(tracks.cuda(), ref.cuda())
    torch.testing.assert_close(tu_gpu.cpu(), tu, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mu_gpu.cpu(), mu, atol=1e-4, rtol=1e-4)


def test_training_losses_run_on_cuda_with_amp():
    """Both methods' losses (console on CUDA, song model and prior on the CPU) match the CPU's in float32,
    and run under autocast with finite gradients."""
    import numpy as np

    from training.methods import Example, collate, paired_example, training_loss

    from synthetic import make_stems

    stems = make_stems(SR, 4.0, 2)
    names = list(stems)
    tracks = np.stack([np.broadcast_to(x, (2, x.shape[-1])) for x in stems.values()]).astype(np.float32)
    tracks *= np.float32(0.05)
    stereo = np.array([x.shape[0] == 2 for x in stems.values()])
    paired = [paired_example(tracks, stereo, SR, np.random.default_rng(s), names) for s in (0, 1)]
    other = [Example(e.tracks, e.stereo, paired[1 - i].reference, song_model=e.song_model,
                     match_target=e.match_target) for i, e in enumerate(paired)]
    tiny = {"n_fft": 512, "hop": 256, "n_bands": 16, "cnn_channels": [4, 8], "embed_dim": 16, "n_layers": 1,
            "n_heads": 2, "ffn_dim": 32, "dropout": 0.0}
    torch.manual_seed(0)
    model = MixController(ModelConfig(**tiny))
    for batch in (collate(paired), collate(other, method=2)):
        cpu, _ = training_loss(model, batch, None, SR)
        gpu_model = MixController(ModelConfig(**tiny)).cuda()
        gpu_model.load_state_dict(model.state_dict())
        on_cuda = batch.to("cuda")
        loss, _ = training_loss(gpu_model, on_cuda, None, SR)
        assert loss.item() == pytest.approx(cpu.item(), rel=0.05)
        amp = torch.autocast("cuda", torch.bfloat16)
        with_amp, _ = training_loss(gpu_model, on_cuda, None, SR, autocast=amp)
        with_amp.backward()
        assert torch.isfinite(with_amp)
        assert all(torch.isfinite(p.grad).all() for p in gpu_model.parameters() if p.grad is not None)
