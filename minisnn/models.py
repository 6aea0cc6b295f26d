"""The paper's networks. Every builder records its arguments in ``net.spec`` so a checkpoint
can rebuild the same network."""
import numpy as np

from .layers import BNTT, LIF, BatchNorm, LayerNorm, Linear, Readout
from .network import Sequential

NORMS = ("bntt", "bn", "ln", "none")


def norm_layer(norm, T, channels, dtype):
    """The normalisation placed between a synaptic layer and its LIF neurons (or None)."""
    if norm == "bntt":
        return BNTT(T, channels, dtype=dtype)
    if norm == "bn":
        return BatchNorm(channels, dtype=dtype)
    if norm == "ln":
        return LayerNorm(channels, dtype=dtype)
    if norm == "none":
        return None
    raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")


def fc_snn(sizes, T, norm="bntt", leak=0.99, threshold=1.0, surrogate="triangle", reset="soft",
           detach_reset=True, dtype=np.float32, seed=0, spec=None):
    """FC(sizes[0], sizes[1]) - … - Readout(sizes[-2], sizes[-1]), each hidden block
    Linear -> norm -> LIF; no biases; Xavier-uniform (gain 2) weights."""
    if T < 1:
        raise ValueError(f"T must be at least 1, got {T}")
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers.append(Linear(n_in, n_out, rng=rng, dtype=dtype))
        nl = norm_layer(norm, T, n_out, dtype)
        if nl is not None:
            layers.append(nl)
        layers.append(LIF(leak=leak, threshold=threshold, reset=reset, detach_reset=detach_reset,
                          surrogate=surrogate))
    layers.append(Readout(sizes[-2], sizes[-1], rng=rng, dtype=dtype))
    return Sequential(*layers, spec=spec)


def _spec(name, **kwargs):
    kwargs["dtype"] = np.dtype(kwargs["dtype"]).name
    surrogate = kwargs["surrogate"]
    kwargs["surrogate"] = surrogate if isinstance(surrogate, (str, dict)) else surrogate.to_dict()
    return {"model": name, **kwargs}


def smnist_fc(T=784, hidden=256, norm="bntt", leak=0.99, threshold=1.0, surrogate="triangle",
              reset="soft", detach_reset=True, dtype=np.float32, seed=0):
    """The paper's sequential-MNIST network FC(1,256)-FC(256,256)-FC(256,10): one pixel per step."""
    args = dict(T=T, hidden=hidden, norm=norm, leak=leak, threshold=threshold, surrogate=surrogate,
                reset=reset, detach_reset=detach_reset, dtype=dtype, seed=seed)
    return fc_snn([1, hidden, hidden, 10], T, norm, leak, threshold, surrogate, reset, detach_reset,
                  dtype, seed, spec=_spec("smnist_fc", **args))


def mnist_fc(T=25, hidden=(800,), norm="bntt", leak=0.95, threshold=1.0, surrogate="triangle",
             reset="soft", detach_reset=True, dtype=np.float32, seed=0):
    """Static MNIST with Poisson input: FC(784, hidden…)-FC(hidden, 10)."""
    hidden = [int(h) for h in np.atleast_1d(hidden)]
    args = dict(T=T, hidden=hidden, norm=norm, leak=leak, threshold=threshold, surrogate=surrogate,
                reset=reset, detach_reset=detach_reset, dtype=dtype, seed=seed)
    return fc_snn([784, *hidden, 10], T, norm, leak, threshold, surrogate, reset, detach_reset,
                  dtype, seed, spec=_spec("mnist_fc", **args))


BUILDERS = {"smnist_fc": smnist_fc, "mnist_fc": mnist_fc}


def build(spec):
    """Rebuild a network from its ``spec`` (as stored in a checkpoint)."""
    spec = dict(spec)
    name = spec.pop("model", None)
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(BUILDERS)}")
    return BUILDERS[name](**spec)


# --- convolutional networks (VGG9, VGG11 of the BNTT reference; a small MNIST CNN) -------------

from .layers import AvgPool2d, Conv2d, Flatten  # noqa: E402  (appended section)

GLOBAL_POOL = "G"


def conv_snn(config, hidden, num_classes, T, in_channels, input_size, norm="bntt", leak=0.99,
             threshold=1.0, surrogate="triangle", reset="soft", detach_reset=True, dtype=np.float32,
             seed=0, spec=None):
    """A convolutional SNN from a layer list, as in the reference code.

    ``config`` holds output channels (a block Conv2d 3×3/s1/p1, no bias -> norm -> LIF), ``"P"``
    (AvgPool2d(2) on the spikes) and ``"G"`` (global average pool: one window over the whole
    map). Then Flatten, the hidden FC blocks (Linear -> norm -> LIF) of ``hidden`` and the
    Readout. Weights are Xavier-uniform with gain 2, drawn in layer order from ``seed``.
    Input ``[T, B, in_channels, input_size, input_size]``.
    """
    if T < 1:
        raise ValueError(f"T must be at least 1, got {T}")
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    lif = dict(leak=leak, threshold=threshold, reset=reset, detach_reset=detach_reset, surrogate=surrogate)
    layers, channels, size = [], in_channels, input_size

    def block(synapse, width):
        layers.append(synapse)
        nl = norm_layer(norm, T, width, dtype)
        if nl is not None:
            layers.append(nl)
        layers.append(LIF(**lif))

    for item in config:
        if item == "P":
            if size < 2:
                raise ValueError(f"input size {input_size} is too small for {config}")
            layers.append(AvgPool2d(2))
            size //= 2
        elif item == GLOBAL_POOL:
            layers.append(AvgPool2d(size))
            size = 1
        else:
            block(Conv2d(channels, item, 3, 1, 1, rng=rng, dtype=dtype), item)
            channels = item
    layers.append(Flatten())
    features = channels * size * size
    for width in hidden:
        block(Linear(features, width, rng=rng, dtype=dtype), width)
        features = width
    layers.append(Readout(features, num_classes, rng=rng, dtype=dtype))
    return Sequential(*layers, spec=spec)


def vgg9(T=25, num_classes=10, in_channels=3, input_size=32, norm="bntt", leak=0.99, threshold=1.0,
         surrogate="triangle", reset="soft", detach_reset=True, dtype=np.float32, seed=0):
    """The BNTT reference's VGG9 (CIFAR-10): 64, 64, P, 128, 128, P, 256, 256, 256, P,
    FC 1024, readout. Input ``[T, B, in_channels, input_size, input_size]``."""
    args = dict(T=T, num_classes=num_classes, in_channels=in_channels, input_size=input_size, norm=norm,
                leak=leak, threshold=threshold, surrogate=surrogate, reset=reset,
                detach_reset=detach_reset, dtype=dtype, seed=seed)
    config = [64, 64, "P", 128, 128, "P", 256, 256, 256, "P"]
    return conv_snn(config, [1024], num_classes, T, in_channels, input_size, norm, leak, threshold,
                    surrogate, reset, detach_reset, dtype, seed, spec=_spec("vgg9", **args))


def vgg11(T=30, num_classes=100, in_channels=3, input_size=32, norm="bntt", leak=0.99, threshold=1.0,
          surrogate="triangle", reset="soft", detach_reset=True, dtype=np.float32, seed=0):
    """The BNTT reference's VGG11 (CIFAR-100, Tiny-ImageNet): 64, P, 128, P, 256, 256, P,
    512, 512, P, 512, 512, global average pool, FC 4096, readout."""
    args = dict(T=T, num_classes=num_classes, in_channels=in_channels, input_size=input_size, norm=norm,
                leak=leak, threshold=threshold, surrogate=surrogate, reset=reset,
                detach_reset=detach_reset, dtype=dtype, seed=seed)
    config = [64, "P", 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, GLOBAL_POOL]
    return conv_snn(config, [4096], num_classes, T, in_channels, input_size, norm, leak, threshold,
                    surrogate, reset, detach_reset, dtype, seed, spec=_spec("vgg11", **args))


def mnist_conv(T=8, num_classes=10, in_channels=1, input_size=28, channels=(32, 64), hidden=128,
               norm="bntt", leak=0.95, threshold=1.0, surrogate="triangle", reset="soft",
               detach_reset=True, dtype=np.float32, seed=0):
    """A small MNIST CNN: 32c3, P, 64c3, P, FC 128, readout (each conv and the FC with norm and LIF).

    Cost per training step of 64 images at T=8: about 0.8 CPU-seconds (one core);
    ``channels=(16, 32)`` is about 3× cheaper.
    """
    channels = [int(c) for c in np.atleast_1d(channels)]
    args = dict(T=T, num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                channels=channels, hidden=int(hidden), norm=norm, leak=leak, threshold=threshold,
                surrogate=surrogate, reset=reset, detach_reset=detach_reset, dtype=dtype, seed=seed)
    config = [item for c in channels for item in (c, "P")]
    return conv_snn(config, [int(hidden)], num_classes, T, in_channels, input_size, norm, leak, threshold,
                    surrogate, reset, detach_reset, dtype, seed, spec=_spec("mnist_conv", **args))


def mnist_vgg(T=25, num_classes=10, in_channels=1, input_size=28, norm="bntt", leak=0.95, threshold=1.0,
              surrogate="triangle", reset="soft", detach_reset=True, dtype=np.float32, seed=0):
    """The BNTT reference's VGG9 scaled to 28×28 MNIST and to two cores: 16c3, P, 32c3, 32c3, P,
    64c3, 64c3, P, FC 128, readout — five conv and one FC block, each with its own norm (six BNTT
    layers), 3×3 maps before the FC. About 1.6–1.9 s per training step of 64 images at T = 25 on
    two cores (VGG9's 64–256 channels would take ~4 s for 16 images)."""
    args = dict(T=T, num_classes=num_classes, in_channels=in_channels, input_size=input_size, norm=norm,
                leak=leak, threshold=threshold, surrogate=surrogate, reset=reset,
                detach_reset=detach_reset, dtype=dtype, seed=seed)
    config = [16, "P", 32, 32, "P", 64, 64, "P"]
    return conv_snn(config, [128], num_classes, T, in_channels, input_size, norm, leak, threshold,
                    surrogate, reset, detach_reset, dtype, seed, spec=_spec("mnist_vgg", **args))


def _resnet_parts(T, norm, leak, threshold, surrogate, reset, detach_reset, dtype, rng):
    """The factories every ResNet builder uses: LIF neurons and conv → norm."""
    def lif():
        return LIF(leak=leak, threshold=threshold, reset=reset, detach_reset=detach_reset, surrogate=surrogate)

    def conv_norm(cin, cout, k, stride):
        nl = norm_layer(norm, T, cout, dtype)
        return [Conv2d(cin, cout, k, stride, k // 2, rng=rng, dtype=dtype)] + ([nl] if nl is not None else [])

    return lif, conv_norm


def resnet(depth=14, T=10, num_classes=10, in_channels=1, input_size=28, widths=(16, 32, 64), norm="bntt",
           leak=0.95, threshold=1.0, surrogate="triangle", reset="soft", detach_reset=True, sew=False,
           plain=False, dtype=np.float32, seed=0):
    """The CIFAR ResNet family (He et al. 2016, §4.2) as a spiking network: depth = 6n + 2.

        conv3×3(16) → norm → LIF,  3 stages × n blocks of widths 16, 32, 64 (stride 2 where a
        stage starts, after the first),  global average pool → Flatten → Readout

    Each block is conv3×3 → norm → LIF → conv3×3 → norm, plus the shortcut (identity, or
    conv1×1/stride → norm where the shape changes), into the block's LIF (``residual.Residual``;
    ``sew``: spikes added after it). ``plain``: the same layers, one after the other, without
    shortcuts (the control). ResNet-8 (n = 1), -14 (n = 2), -20 (n = 3), …
    """
    from .residual import Residual
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has depth 6n + 2 ≥ 8, got {depth}")
    if T < 1:
        raise ValueError(f"T must be at least 1, got {T}")
    args = dict(depth=depth, T=T, num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                widths=[int(w) for w in widths], norm=norm, leak=leak, threshold=threshold, surrogate=surrogate,
                reset=reset, detach_reset=detach_reset, sew=sew, plain=plain, dtype=dtype, seed=seed)
    dtype, rng = np.dtype(dtype), np.random.default_rng(seed)
    lif, conv_norm = _resnet_parts(T, norm, leak, threshold, surrogate, reset, detach_reset, dtype, rng)
    layers, channels, size = conv_norm(in_channels, widths[0], 3, 1) + [lif()], widths[0], input_size
    for stage, width in enumerate(widths):
        for block in range((depth - 2) // 6):
            stride = 2 if stage > 0 and block == 0 else 1
            main = conv_norm(channels, width, 3, stride) + [lif()] + conv_norm(width, width, 3, 1)
            if plain:
                layers += main + [lif()]
            else:
                shortcut = conv_norm(channels, width, 1, stride) if (stride != 1 or channels != width) else []
                layers.append(Residual(main, shortcut, lif(), sew=sew))
            channels, size = width, -(-size // stride)
    layers += [AvgPool2d(size), Flatten(), Readout(channels, num_classes, rng=rng, dtype=dtype)]
    return Sequential(*layers, spec=_spec("resnet", **args))


def resnet50(T=10, num_classes=100, in_channels=3, input_size=32, widths=(64, 128, 256, 512), blocks=(3, 4, 6, 3),
             norm="bntt", leak=0.95, threshold=1.0, surrogate="triangle", reset="soft", detach_reset=True,
             sew=False, dtype=np.float32, seed=0):
    """ResNet-50 (He et al. 2016, Table 1) as a spiking network, the network of Ledinauskas et al.
    2020: bottleneck blocks (conv1×1 → norm → LIF → conv3×3/stride → norm → LIF → conv1×1 (4×
    width) → norm, + shortcut, → LIF), 3, 4, 6, 3 of them at widths 64, 128, 256, 512, global
    average pool, readout. The stem is conv3×3(64) for inputs up to 32 px (the CIFAR variant)
    and conv7×7/2 → norm → LIF → average pool 3×3/2 above (max pooling replaced by average
    pooling, which minisnn has, on the spikes)."""
    from .residual import Residual
    if T < 1:
        raise ValueError(f"T must be at least 1, got {T}")
    args = dict(T=T, num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                widths=[int(w) for w in widths], blocks=[int(b) for b in blocks], norm=norm, leak=leak,
                threshold=threshold, surrogate=surrogate, reset=reset, detach_reset=detach_reset, sew=sew,
                dtype=dtype, seed=seed)
    dtype, rng = np.dtype(dtype), np.random.default_rng(seed)
    lif, conv_norm = _resnet_parts(T, norm, leak, threshold, surrogate, reset, detach_reset, dtype, rng)
    if input_size <= 32:
        layers, size = conv_norm(in_channels, widths[0], 3, 1) + [lif()], input_size
    else:
        layers = conv_norm(in_channels, widths[0], 7, 2) + [lif(), AvgPool2d(3, 2)]
        size = (-(-input_size // 2) - 3) // 2 + 1
    channels = widths[0]
    for stage, (width, n) in enumerate(zip(widths, blocks)):
        for block in range(n):
            stride = 2 if stage > 0 and block == 0 else 1
            out = 4 * width
            main = (conv_norm(channels, width, 1, 1) + [lif()] + conv_norm(width, width, 3, stride) + [lif()]
                    + conv_norm(width, out, 1, 1))
            shortcut = conv_norm(channels, out, 1, stride) if (stride != 1 or channels != out) else []
            layers.append(Residual(main, shortcut, lif(), sew=sew))
            channels, size = out, -(-size // stride)
    layers += [AvgPool2d(size), Flatten(), Readout(channels, num_classes, rng=rng, dtype=dtype)]
    return Sequential(*layers, spec=_spec("resnet50", **args))


BUILDERS.update(vgg9=vgg9, vgg11=vgg11, mnist_conv=mnist_conv, mnist_vgg=mnist_vgg, resnet=resnet, resnet50=resnet50)
