"""minisnn: a from-scratch spiking-neural-network engine with hand-derived BPTT."""
__version__ = "0.1.0"
