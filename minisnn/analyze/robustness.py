"""Accuracy under Gaussian noise and under FGSM (paper Fig. 8A and 8B).

Perturbations live in pixel space (intensities in [0, 1] for MNIST), then the image is
normalised and encoded twice: with the clean run's own Poisson draws (the attack's draws, so
the only change is the perturbation) and with fresh draws, as a deployed network would meet
the adversarial image (the BNTT paper's protocol: its Fig. 8 credits the encoder's
stochasticity, which the attack's own draws take away):

    noise:  p̃ = clip(p + σ·n, 0, 1),            n ~ N(0, 1) per pixel
    FGSM:   p̃ = clip(p + ε·sign(∂L/∂p), 0, 1)    (Goodfellow et al. 2015), one step, white box

∂L/∂p comes from the engine's own BPTT in evaluation mode, ``net.backward(dlogits)`` giving
∂L/∂s for the encoded input s ``[T, B, ...]``, mapped back to the image through the encoder:

    pixel sequence (sMNIST): s_t = x_{b, t}        ->  ∂L/∂x_{b,t} = ∂L/∂s_{t,b}
    Poisson (static MNIST):  E[s_t] = sign(x)·min(1, |x|/2)
                                                    ->  ∂L/∂x = Σ_t ∂L/∂s_t · [|x| < 2]/2

A Poisson spike has no derivative, so the attack differentiates the rate code's expectation
(a straight-through estimate: forward on the sampled spikes, backward through E[s_t]), the
SNN-crafted attack of Sharmin et al. 2020 that the BNTT paper uses; and with x = (p − mean)/std,
sign(∂L/∂p) = sign(∂L/∂x). A deterministic encoder (sMNIST's pixel sequence, ``Task.stochastic``
False) has no draws, so its fresh results are its own ones, copied instead of evaluated again.
"""
import numpy as np
from tqdm import tqdm

from ..losses import cross_entropy
from ..tasks import FRESH_KEY, NOISE_KEY, batch_rng
from . import common



def pixel_space(task):
    """(mean, std, clip) so that pixels p = x·std + mean; tasks without pixel statistics:
    normalised units, no clip."""
    if task.pixel_stats is not None:
        return (*task.pixel_stats, True)
    return 0.0, 1.0, False


def input_gradient(task, images, dx):
    """∂L/∂x for the normalised images ``[B, ...]`` from ∂L/∂s ``[T, B, ...]`` (``net.backward``),
    s = encode(x): the task's ``encode_backward`` (module docstring)."""
    if task.encode_backward is None:
        raise ValueError(f"FGSM does not know how to differentiate the input encoder of task {task.name!r}")
    return task.encode_backward(images, dx)


def loss_gradient(net, x, labels):
    """The mean cross-entropy and its gradient with respect to the input, by BPTT in evaluation mode.

    Parameters
    ----------
    net : Sequential
    x : ndarray
        Encoded input ``[T, B, ...]``.
    labels : ndarray
        ``[B]``.

    Returns
    -------
    (float, ndarray)
        The loss and ∂L/∂x ``[T, B, ...]``; the parameters' ``.grad`` are left at zero.
    """
    logits = net.forward(x, train=False)
    loss, dlogits = cross_entropy(logits, labels)
    dx = net.backward(dlogits)
    net.zero_grad()
    net.clear()
    return loss, dx


def perturb(images, delta, task):
    """Normalised images moved by ``delta`` pixel units, clipped to valid pixels."""
    mean, std, clip = pixel_space(task)
    pixels = images.astype(np.float64) * std + mean + delta
    if clip:
        pixels = np.clip(pixels, 0.0, 1.0)
    return ((pixels - mean) / std).astype(images.dtype)


def score(net, x, labels):
    """(summed cross-entropy, number correct) of one evaluation batch ``x`` ``[T, B, ...]``."""
    logits = net.forward(x, train=False)
    loss, _ = cross_entropy(logits, labels)
    net.clear()
    return loss * len(labels), int((logits.argmax(axis=1) == labels).sum())


def encode_fresh(task, images, start, T, seed):
    """Encode test images ``start, …`` with new draws (seed, FRESH_KEY, i)."""
    return common.encode_eval(task, images, start, T, seed, key=FRESH_KEY)


def analyse(net, meta, task, images, labels, batch_size, sigmas, epsilons, progress=False):
    """Accuracy (and loss) for each noise σ and FGSM ε, all in pixel units, under the attack's own
    Poisson draws and under fresh ones.

    Test image i keeps its evaluation draws (seed, EVAL_KEY, i) under every perturbation, has its
    own fresh draws (seed, FRESH_KEY, i) and its own noise draw (seed, NOISE_KEY, i), so nothing
    depends on the batch size (except through ``--bn-stats batch``). One BPTT pass per batch, on
    the clean image's own draws, serves every ε.

    Parameters
    ----------
    net, meta, task
        As ``common.load`` returns them.
    images, labels : ndarray
        Normalised test images and labels.
    batch_size : int
    sigmas, epsilons : list of float
        Noise levels and FGSM steps, in pixel units.
    progress : bool

    Returns
    -------
    dict
        ``noise_accuracy`` ``[len(sigmas)]``, ``fgsm_accuracy`` and ``fgsm_loss`` ``[len(epsilons)]``
        under the own draws; the same with ``_fresh`` under fresh draws; ``samples``, ``units``.
    """
    config = meta["config"]
    T, seed = config["T"], config.get("seed", 0)
    draws = {"": common.encode_eval, "_fresh": encode_fresh} if task.stochastic else {"": common.encode_eval}
    hits = {f"{kind}{d}": np.zeros(len(levels)) for d in draws for kind, levels in (("noise", sigmas),
                                                                                    ("fgsm", epsilons))}
    fgsm_loss = {d: np.zeros(len(epsilons)) for d in draws}
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc="robustness", disable=not progress, leave=False):
        x, y = images[start:start + batch_size], labels[start:start + batch_size]
        n = np.stack([batch_rng(seed, NOISE_KEY, start + j).standard_normal(x.shape[1:]) for j in range(len(x))])
        _, dx = loss_gradient(net, common.encode_eval(task, x, start, T, seed), y)
        direction = np.sign(input_gradient(task, x, dx))
        for d, encode in draws.items():
            for k, sigma in enumerate(sigmas):
                hits["noise" + d][k] += score(net, encode(task, perturb(x, sigma * n, task), start, T, seed), y)[1]
            for k, eps in enumerate(epsilons):
                loss_sum, correct = score(net, encode(task, perturb(x, eps * direction, task), start, T, seed), y)
                hits["fgsm" + d][k] += correct
                fgsm_loss[d][k] += loss_sum
    N = len(images)
    result = {"samples": N, "sigmas": list(sigmas), "epsilons": list(epsilons),
              "units": "pixel intensity in [0, 1]" if pixel_space(task)[2] else "normalised input units"}
    for d in ("", "_fresh"):
        own = d if d in draws else ""                     # a deterministic encoder: the same draws
        result.update({f"noise_accuracy{d}": hits["noise" + own] / N, f"fgsm_accuracy{d}": hits["fgsm" + own] / N,
                       f"fgsm_loss{d}": fgsm_loss[own] / N})
    return result


def plot(results, path, title=""):
    plt = common.plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in results:
        line, = a.plot(r["sigmas"], 100 * np.asarray(r["noise_accuracy_fresh"]), "o-", label=f"{r['label']}, fresh draws")
        a.plot(r["sigmas"], 100 * np.asarray(r["noise_accuracy"]), "x--", color=line.get_color(),
               label=f"{r['label']}, the attack's draws")
        b.plot(r["epsilons"], 100 * np.asarray(r["fgsm_accuracy_fresh"]), "o-", color=line.get_color(),
               label=f"{r['label']}, fresh draws")
        b.plot(r["epsilons"], 100 * np.asarray(r["fgsm_accuracy"]), "x--", color=line.get_color(),
               label=f"{r['label']}, the attack's draws")
    a.set(xlabel="noise σ (pixel units)", ylabel="test accuracy (%)", title="additive Gaussian noise")
    b.set(xlabel="FGSM ε (pixel units)", ylabel="test accuracy (%)",
          title="FGSM, SNN-crafted (BPTT to the input; Sharmin et al. 2020)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_ylim(0, 101)
    fig.suptitle(title)
    return common.save_figure(fig, path)


def add_arguments(p):
    p.add_argument("--sigmas", default="0,0.1,0.2,0.3,0.4,0.5", help="Gaussian noise levels (pixel units)")
    p.add_argument("--epsilons", default="0,0.02,0.05,0.1,0.15,0.2", help="FGSM step sizes (pixel units)")
    p.add_argument("--compare", nargs="+", default=[], metavar="CHECKPOINT",
                   help="other checkpoints attacked the same way (e.g. trained without BNTT)")


def run(args):
    sigmas = common.parse_list(args.sigmas, float, "--sigmas")
    epsilons = common.parse_list(args.epsilons, float, "--epsilons")
    if min(sigmas) < 0 or min(epsilons) < 0:
        raise ValueError("--sigmas and --epsilons must be non-negative")
    loaded = [(c, *common.load(c)) for c in [args.checkpoint, *args.compare]]
    if len({task.name for _, _, _, task in loaded}) > 1:
        raise ValueError("--compare checkpoints must be trained on the same dataset")
    results, cache = [], {}
    for path, net, meta, task in loaded:
        if task.name not in cache:
            cache[task.name] = common.load_test(task, args.data_dir, args.subset)
        images, labels = cache[task.name]
        batch_size, bn_stats = common.eval_mode(net, meta, args.bn_stats, args.batch_size)
        r = analyse(net, meta, task, images, labels, batch_size, sigmas, epsilons, progress=True)
        r.update(checkpoint=str(path), norm=meta["config"].get("norm"), dataset=task.name, bn_stats=bn_stats,
                 batch_size=batch_size)
        results.append(r)
    for r, label in zip(results, common.labels([(r["norm"], r["checkpoint"]) for r in results])):
        r["label"] = label
    main = results[0]
    gaps = [{"against": r["label"], **{f"{kind}{d}": np.asarray(main[f"{kind}_accuracy{d}"]) - r[f"{kind}_accuracy{d}"]
                                       for kind in ("noise", "fgsm") for d in ("", "_fresh")}}
            for r in results[1:]]
    out = common.out_dir(args.out, args.checkpoint)
    plot(results, out / "robustness.png", f"{main['dataset']}: robustness ({main['samples']} test samples)")
    common.save_json(out / "robustness.json", {"runs": results, "gaps": gaps})
    text = "; ".join(f"{r['label']}: noise σ={sigmas[-1]:g} {100 * r['noise_accuracy_fresh'][-1]:.2f} %, "
                     f"FGSM ε={epsilons[-1]:g} {100 * r['fgsm_accuracy_fresh'][-1]:.2f} % (fresh draws; "
                     f"{100 * r['fgsm_accuracy'][-1]:.2f} % with the attack's)" for r in results)
    return f"{text}; {out / 'robustness.png'}"
