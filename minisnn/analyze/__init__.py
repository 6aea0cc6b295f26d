"""The paper's analyses of a trained SNN, one module each (``python -m minisnn.analyze``):

early_exit (BNTT γ through time, Figs. 4, 7), spikes (Figs. 1, 5), gamma (Fig. 6),
robustness (Fig. 8), compare_norm (Tables 1, 4, 5), surrogate_sweep (Ledinauskas et al.).
"""
