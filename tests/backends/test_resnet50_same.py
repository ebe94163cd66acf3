"""The Keras and torch ResNet-50 are one network: same parameters, zero-γ, and equal logits for equal weights."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from backends.keras.models import resnet50 as keras_resnet50  # noqa: E402
from backends.torch.models import resnet50 as torch_resnet50  # noqa: E402
from backends.torch.params import zero_gamma_init  # noqa: E402

SIZE = 64  # stride-2 layers see even sizes 64, 32, 16, 8, 4: where Keras "same" would pad asymmetrically
TRAINABLE = 25_557_032  # torchvision's resnet50 at 1000 classes
BN_CHANNELS = 26_560  # moving mean and variance per channel: Keras counts them in count_params()


def _keras_name(torch_name: str) -> str:
    """Torch module name → Keras layer name: ``"0.0"`` → ``"stem_conv"``, ``"2.1.shortcut.1"`` →
    ``"stage2_block2_proj_bn"``, ``"7"`` → ``"fc"``."""
    parts = torch_name.split(".")
    if parts[0] == "0":
        return {"0": "stem_conv", "1": "stem_bn"}[parts[1]]
    if parts[0] == "7":
        return "fc"
    layer = ".".join(parts[2:])
    layer = {"shortcut.0": "proj", "shortcut.1": "proj_bn"}.get(layer, layer)
    return f"stage{parts[0]}_block{int(parts[1]) + 1}_{layer}"


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every torch layer with parameters, in ``model.parameters()`` order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]


def _to_keras(module: nn.Module, *, trainable_only: bool = False) -> list[np.ndarray]:
    """A torch layer's tensors in Keras' order and layout: conv OIHW → HWIO, linear (out, in) →
    (in, out) then bias, BN γ, β (then moving mean, variance unless ``trainable_only``)."""
    if isinstance(module, nn.Conv2d):
        return [module.weight.detach().numpy().transpose(2, 3, 1, 0)]
    if isinstance(module, nn.Linear):
        return [module.weight.detach().numpy().T, module.bias.detach().numpy()]
    tensors = (module.weight, module.bias) if trainable_only else \
        (module.weight, module.bias, module.running_mean, module.running_var)
    return [t.detach().numpy() for t in tensors]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    tmodel = torch_resnet50(3, 1000)
    zero_gamma_init(tmodel)
    return tmodel, keras_resnet50((SIZE, SIZE, 3), 1000)


def test_parameter_counts_and_shapes_equal(models):
    tmodel, kmodel = models
    trainable = sum(int(np.prod(w.shape)) for w in kmodel.trainable_weights)
    assert trainable == sum(p.numel() for p in tmodel.parameters()) == TRAINABLE
    assert kmodel.count_params() == TRAINABLE + 2 * BN_CHANNELS == 25_610_152
    torch_shapes = [a.shape for _, m in _layers(tmodel) for a in _to_keras(m, trainable_only=True)]
    keras_layers = [kmodel.get_layer(_keras_name(n)) for n, _ in _layers(tmodel)]
    keras_shapes = [tuple(w.shape) for layer in keras_layers for w in layer.trainable_weights]
    assert len(torch_shapes) == len(kmodel.trainable_weights) == 161
    assert keras_shapes == torch_shapes
    mapped = {_keras_name(n) for n, _ in _layers(tmodel)}
    assert mapped == {layer.name for layer in kmodel.layers if layer.trainable_weights}


def test_zero_gamma_in_each_bottleneck_last_bn(models):
    tmodel, kmodel = models
    torch_zeroed = [_keras_name(n) for n, m in _layers(tmodel)
                    if isinstance(m, nn.BatchNorm2d) and not m.weight.detach().any()]
    keras_zeroed = [layer.name for layer in kmodel.layers
                    if hasattr(layer, "gamma") and not np.asarray(layer.gamma).any()]
    assert len(torch_zeroed) == 16 and all(n.endswith("_bn_last") for n in torch_zeroed)
    assert sorted(keras_zeroed) == sorted(torch_zeroed)


def _torch_with_statistics(x: torch.Tensor) -> nn.Module:
    """Torch ResNet-50 with random nonzero γ, β and running statistics taken from ``x``, in eval mode
    (nonzero γ keeps every residual branch, hence every padded convolution, in the logits)."""
    torch.manual_seed(1)
    model = torch_resnet50(3, 10)
    with torch.no_grad():
        for _, m in _layers(model):
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.momentum = 1.0  # one training forward sets running stats to the batch's
        model.train()(x)
    return model.eval()


def test_logits_equal_for_copied_weights():
    rng = np.random.default_rng(0)
    calibration, x = (rng.normal(size=(n, 3, SIZE, SIZE)).astype(np.float32) for n in (8, 2))
    tmodel = _torch_with_statistics(torch.from_numpy(calibration))
    kmodel = keras_resnet50((SIZE, SIZE, 3), 10)
    for name, module in _layers(tmodel):
        kmodel.get_layer(_keras_name(name)).set_weights(_to_keras(module))
    with torch.no_grad():
        expected = tmodel(torch.from_numpy(x)).numpy()
    logits = np.asarray(kmodel(np.transpose(x, (0, 2, 3, 1)), training=False))
    assert np.abs(expected).max() > 0.1  # logits are not trivially zero
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
