"""The tiny run the hwmodel tests share: Linear(3→2) → LIF(2) → Readout(2→2), T = 2, binary
inputs. COUNTS[source][t, i] = samples whose value at step t, position i is non-zero."""
import numpy as np

LAYERS = [
    {"index": 0, "kind": "Linear", "in_shape": [3], "out_shape": [2], "input": "input",
     "params": {"in_features": 3, "out_features": 2}},
    {"index": 1, "kind": "LIF", "in_shape": [2], "out_shape": [2], "output": "L1", "params": {}},
    {"index": 2, "kind": "Readout", "in_shape": [2], "out_shape": [2], "input": "L1",
     "params": {"in_features": 2, "out_features": 2}},
]
SOURCES = {"input": {"shape": [3], "binary": True}, "L1": {"shape": [2], "binary": True}}
COUNTS = {"input": np.array([[2, 0, 1], [0, 1, 0]]), "L1": np.array([[1, 0], [2, 1]])}
