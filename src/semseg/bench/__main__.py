"""Run the benchmark suite, print one markdown report and write it under bench/results/.

    python -m semseg.bench                          # every part (about 15 minutes on 2 CPU cores)
    python -m semseg.bench --only overhead pipeline # some parts; written to bench/results/<parts>.md
"""

import argparse
import os
import platform
import resource
import time
from pathlib import Path

import torch

from semseg.bench import architectures, growth, memory, onnx_latency, overhead, peer, pipeline, sliding_window_cost
from semseg.bench.timing import write_report

PARTS = {
    "patch_classifier": lambda args: sliding_window_cost.report(args.sizes, args.repeats, args.naive_max_pixels),
    "overhead": lambda args: overhead.report(),
    "pipeline": lambda args: pipeline.report(),
    "peer": lambda args: peer.report(args.peer_steps),
    "peer_unet": lambda args: peer.unet_seeds_report(args.peer_unet_steps, args.peer_seeds),
    "memory": lambda args: memory.report(),
    "growth": lambda args: growth.report(),
    "onnx": lambda args: onnx_latency.report(),
    "architectures": lambda args: architectures.report(),
}
RESULTS = Path("bench") / "results"


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}, Python {platform.python_version()}, CPU only")


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(PARTS), default=list(PARTS), help="parts to run")
    parser.add_argument("--output", type=Path, help="report file (default bench/results/suite.md, or <parts>.md)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512], help="patch_classifier sizes")
    parser.add_argument("--repeats", type=int, default=3, help="patch_classifier: timed runs per method and size")
    parser.add_argument("--naive-max-pixels", type=int, default=16384,
                        help="patch_classifier: above this many pixels, naive is timed on a strip of rows and scaled")
    parser.add_argument("--peer-steps", type=int, default=30, help="peer: training steps per model")
    parser.add_argument("--peer-unet-steps", type=int, default=300, help="peer_unet: training steps per model and seed")
    parser.add_argument("--peer-seeds", type=int, nargs="+", default=[0, 1, 2], help="peer_unet: the seeds")
    args = parser.parse_args(argv)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    sections = []
    for name in args.only:
        part_started = time.perf_counter()
        sections.append(PARTS[name](args))
        print(sections[-1] + f"\n\n({name}: {time.perf_counter() - part_started:.0f} s)\n", flush=True)
    whole = "all" if args.only == list(PARTS) else "-".join(args.only)
    footer = (f"Machine: {machine()}. Suite wall time: {time.perf_counter() - started:.0f} s; this process peaked "
              f"at {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB. Load average (1 min) "
              f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} cores).")
    report = "\n\n".join([f"# semseg benchmarks ({whole})", *sections, footer])
    path = write_report(report, args.output or RESULTS / ("suite.md" if whole == "all" else f"{whole}.md"))
    print(footer + f"\nwritten to {path}")
    return report


if __name__ == "__main__":
    main()
