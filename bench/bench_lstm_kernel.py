"""The bidirectional LSTM layer alone, PyTorch against TensorFlow/Keras: forward and backward per timestep.

    OMP_NUM_THREADS=1 python bench/bench_lstm_kernel.py --threads 1 --widths 234,400 --rounds 3

bench_keras.py compares whole training steps; this asks what is left when everything around the recurrent
layer is taken away: one bidirectional LSTM layer (input 64, hidden 64, batch 128, the bench_keras shapes)
on a fixed random float32 input [B, T, 64], a forward pass and the gradients of sum(outputs * G) (G a fixed
random cotangent) with respect to the weights and the input, as a training step needs them. Sides:

- torch-bi:     `nn.LSTM(bidirectional=True)`, one call (oneDNN's kernel on x86)
- torch-2uni:   two unidirectional `nn.LSTM` calls, the second on the time-reversed input, as rnnlab's
                encoder runs a bidirectional layer (it reverses within each row's length)
- torch-native: `nn.LSTM(bidirectional=True)` with oneDNN off (ATen's own LSTM)
- keras:        `Bidirectional(LSTM(64, return_sequences=True))` in a `tf.function` with a GradientTape

`--output last` scores only the last step's states instead (the Keras tutorial's `LSTM(64)`; torch's h_n).
`--retain-freed-memory` has every worker, Keras's included, first call
`rnnlab.allocator.retain_freed_memory()` (what `train.retain_freed_memory`, on by default, does in rnnlab's
training processes).
Every (side, width) runs `--rounds` times, each in a fresh process, the order rotating between rounds; a
process times `--iters` steps after `--warmup` untimed ones and reports the median. Timesteps per CPU second =
B x T / (CPU seconds of the process for one step); the figure is the median over rounds. Needs TensorFlow
for the keras side (`pip install -e .[bench]`); the torch sides run without it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from machine import cpu_model

SIDES = ("torch-bi", "torch-2uni", "torch-native", "keras")
BATCH, SIZE = 128, 64


def torch_step(side: str, width: int, output: str, seed: int):
    """A function running one forward + backward of the layer for a torch side."""
    import torch

    torch.manual_seed(seed)
    x = torch.randn(BATCH, width, SIZE, requires_grad=True)
    if side == "torch-2uni":
        forward = torch.nn.LSTM(SIZE, SIZE, batch_first=True)
        backward = torch.nn.LSTM(SIZE, SIZE, batch_first=True)

        def layer(inputs):
            out_f, (h_f, _) = forward(inputs)
            out_b, (h_b, _) = backward(inputs.flip(1))
            return torch.cat([out_f, out_b.flip(1)], dim=-1), torch.cat([h_f[-1], h_b[-1]], dim=-1)
    else:
        lstm = torch.nn.LSTM(SIZE, SIZE, batch_first=True, bidirectional=True)

        def layer(inputs):
            out, (h, _) = lstm(inputs)
            return out, torch.cat([h[0], h[1]], dim=-1)

    cotangent = torch.randn(BATCH, width, 2 * SIZE) if output == "all" else torch.randn(BATCH, 2 * SIZE)

    def step():
        outputs, last = layer(x)
        loss = ((outputs if output == "all" else last) * cotangent).sum()
        loss.backward()

    if side == "torch-native":
        torch.backends.mkldnn.set_flags(False)  # for the life of this worker process
    return step


def keras_step(width: int, output: str, seed: int):
    """A function running one forward + backward of the layer on the keras side."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    layer = keras.layers.Bidirectional(keras.layers.LSTM(SIZE, return_sequences=output == "all"))
    x = tf.Variable(tf.random.normal((BATCH, width, SIZE)))
    layer.build(x.shape)
    shape = (BATCH, width, 2 * SIZE) if output == "all" else (BATCH, 2 * SIZE)
    cotangent = tf.random.normal(shape)
    variables = [*layer.trainable_variables, x]

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x) * cotangent)
        return tape.gradient(loss, variables)

    return step


def worker(
    side: str, width: int, output: str, threads: int, iters: int, warmup: int, seed: int, retain: bool
) -> dict:
    """Time `iters` steps of `side` in this process; medians of wall and CPU seconds per step."""
    if retain:
        from rnnlab.allocator import retain_freed_memory

        retain_freed_memory()
    if side == "keras":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        step = keras_step(width, output, seed)
    else:
        import torch

        torch.set_num_threads(threads)
        step = torch_step(side, width, output, seed)
    walls, cpus = [], []
    for i in range(warmup + iters):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        if i >= warmup:
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus)}


def run_worker(args: argparse.Namespace, side: str, width: int) -> dict:
    config = {"side": side, "width": width, "output": args.output, "threads": args.threads,
              "iters": args.iters, "warmup": args.warmup, "seed": args.seed,
              "retain": args.retain_freed_memory}  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, __file__, "--worker", json.dumps(config)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"worker {side} (width {width}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated, of {', '.join(SIDES)}")
    parser.add_argument("--widths", default="234,400", help="timesteps T (234: rnnlab's mean bucketed width)")
    parser.add_argument("--output", choices=("all", "last"), default="all", help="which outputs are scored")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per side and width")
    parser.add_argument("--iters", type=int, default=10, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retain-freed-memory", action="store_true", help="in every worker (see above)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.sides.split(",")) - set(SIDES)
    if unknown:
        parser.error(f"unknown side(s) {sorted(unknown)}; choose from {', '.join(SIDES)}")
    return args


def main() -> int:
    args = parse_args()
    if args.worker:
        print(json.dumps(worker(**json.loads(args.worker))))
        return 0
    sides, widths = args.sides.split(","), [int(w) for w in args.widths.split(",")]
    print(f"command : python {' '.join(sys.argv)}")
    print(f"machine : {os.cpu_count()} CPUs, {cpu_model()}, {platform.platform()}")
    print(f"load    : 1-minute load average {os.getloadavg()[0]:.2f} at the start")
    print(f"shapes  : batch {BATCH}, input {SIZE}, hidden {SIZE} a direction; scored: {args.output} outputs")
    print(f"timing  : {args.rounds} rounds x {args.iters} steps (+{args.warmup}), {args.threads} thread(s)")
    malloc = "freed memory retained (rnnlab.allocator)" if args.retain_freed_memory else "defaults"
    print(f"malloc  : {malloc}")
    cpu_s: dict[tuple[str, int], list[float]] = {(s, w): [] for s in sides for w in widths}
    for r in range(args.rounds):
        order = sides[r % len(sides) :] + sides[: r % len(sides)]
        for width in widths:
            for side in order:
                cpu_s[side, width].append(run_worker(args, side, width)["cpu_s"])
    print(f"load    : 1-minute load average {os.getloadavg()[0]:.2f} at the end\n")
    print(f"{'side':<13}{'T':>5}{'ms/step (CPU)':>15}{'steps/CPU s':>13}  rounds (ms)")
    for width in widths:
        for side in sides:
            times = cpu_s[side, width]
            best = statistics.median(times)
            rounds = " ".join(f"{t * 1e3:.0f}" for t in times)
            print(f"{side:<13}{width:>5}{best * 1e3:>15.1f}{BATCH * width / best / 1e3:>12.1f}k  {rounds}")
        if "keras" in sides:
            keras = statistics.median(cpu_s["keras", width])
            ratios = ", ".join(
                f"{s} {keras / statistics.median(cpu_s[s, width]):.2f}x" for s in sides if s != "keras"
            )
            print(f"{'':<13}{width:>5}  per timestep against keras: {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
