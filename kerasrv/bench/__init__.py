"""`kerasrv bench`: each entry beside the textbook model, its exports, and this machine's matmul.

Everything is measured in one run on one machine, and the claims are ratios within that run:
these machines are shared and noisy, so an absolute time says little on its own.

Per entry, in a subprocess of its own (so peak memory is the entry's, and one entry's graphs do
not slow the next):
1. training throughput (samples/s, steady state after warm-up) of the entry and of the textbook
   Keras model of the same task (`textbook`), and, without --quick, both models' test metric
   after the same few epochs on the same examples;
2. inference: batch-1 latency (median) and batch-64 throughput of `model.predict`, a direct
   `model(x)` call, the SavedModel signature, and the TFLite file (float32 and int8, 1 and
   2 threads) in the LiteRT interpreter;
3. training FLOPs per sample, counted from the gradient graph (`graph_flops`), the FLOP/s that
   training achieves, and that against a large float32 matmul measured in the same run;
4. peak RSS of training and of TFLite inference, and the size of each artifact;
5. the input pipeline's examples/s against the entry's training samples/s;
6. where training time goes: the TF profiler's kernel time per op type in a few training steps
   of the entry and of the textbook model (`training_profile`).

The report also sets the trained video predictors beside OpenSTL's published table, with their
multiply-accumulates per clip (`forward_macs`, the unit of OpenSTL's FLOPs column).

The package: `textbooks` (the textbook model of each architecture), `measure` (the
measurements), `runner` (each entry in a subprocess, results into one JSON), `report`
(BENCHMARKS.md and a chart beside the JSON).

Example:
    kerasrv bench cnn_lstm lrcn --quick          # a smoke run: small inputs, few steps
    kerasrv bench                                # every entry, written to bench/results.json
    kerasrv bench --report                       # bench/BENCHMARKS.md and bench/chart.png
"""

from kerasrv.bench.measure import forward_macs, graph_flops, matmul_flops, training_profile
from kerasrv.bench.report import report
from kerasrv.bench.runner import RESULTS, bench_entry, run
from kerasrv.bench.textbooks import textbook, training_goal

__all__ = [
    "RESULTS",
    "bench_entry",
    "forward_macs",
    "graph_flops",
    "matmul_flops",
    "report",
    "run",
    "textbook",
    "training_goal",
    "training_profile",
]
