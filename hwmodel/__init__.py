"""hwmodel: what a recorded spiking run would cost on neuromorphic hardware.

The pipeline, one file per idea:

    runfile.py   read, validate (and write) the run file, format v1 (docs/run-format.md)
    geometry.py  fan-out of every input position of Linear / Conv2d / pooling layers
    counts.py    synaptic operations (ACs), MACs, dense ops, neuron updates, spikes,
                 normalisation operations, the ANN's MACs (dense and zero-skipping)
    profiles.py  hardware profiles: TOML data files, every constant with its source and range
    mapping.py   placing the layers on a chip's cores: cores, chips, fit, spike traffic
    memory.py    the optional per-access memory model (after Lemaire et al. 2022)
    energy.py    pricing, SNN/ANN ratio and break-even spike rate; CLI
                 ``python -m hwmodel.energy run.npz``
    report.py    the text tables and the JSON document the CLI prints
    plot.py      energy per layer, and energy ratio against spike rate
"""
