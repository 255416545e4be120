#!/usr/bin/env python3
"""Helper of bench/train.ts for the PyTorch side (run with /usr/bin/python3, which has Debian's torch).

  torch_bench.py peak                       peak GEMM FLOP/s of torch.matmul here (float32, all threads, as
                                            the reference trainer sets them), one JSON line
  torch_bench.py train REF.py CONFIG.json --steps N --warmup N
                                            runs the reference trainer REF.py (../shared/bench/torch_reference.py,
                                            unchanged) as a child process and prints its JSON line with the
                                            child's peak resident memory added (peak_rss_mb, from getrusage)
"""
import json, os, resource, subprocess, sys, time


def peak():
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    best = {}
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.matmul(a, b)
        times = []
        start = time.perf_counter()
        while len(times) < 3 or (time.perf_counter() - start < 1.0 and len(times) < 20):
            t0 = time.perf_counter()
            torch.matmul(a, b)
            times.append(time.perf_counter() - t0)
        best[n] = 2 * n ** 3 / min(times)
    n = max(best, key=best.get)
    print(json.dumps({"gemm_peak_gflops": round(best[n] / 1e9, 2), "at": n, "by_size": {str(k): round(v / 1e9, 2) for k, v in best.items()},
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


def train(ref, cfg, rest):
    out = subprocess.run([sys.executable, ref, cfg, *rest], capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        sys.exit(out.returncode)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)  # KiB on Linux
    print(json.dumps(r))


if __name__ == "__main__":
    if sys.argv[1:2] == ["peak"]:
        peak()
    elif sys.argv[1:2] == ["train"] and len(sys.argv) >= 4:
        train(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)
