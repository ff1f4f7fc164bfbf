"""Print a simulated node's GPUs from `fakegpu-dump` JSON on stdin (the demo's ground truth:
read from the state file, no hook involved): memory and busy time per GPU and process."""

import json
import sys


def main() -> None:
    window_s = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    dump = json.load(sys.stdin)
    for dev in dump["devices"]:
        print(f"  GPU {dev['index']}: memory used {dev['memory_used'] / 2**30:.1f} of "
              f"{dev['memory_total'] / 2**30:.0f} GiB, busy {dev['utilization'] * 100:.0f} % "
              f"of the last {window_s:g} s")
        for proc in dev["processes"]:
            if proc.get("alive") and (proc["memory_used"] or proc["busy_window_ns"]):
                share = proc["busy_window_ns"] / (window_s * 1e9) * 100
                print(f"    pid {proc['pid']}: {proc['memory_used'] / 2**30:.1f} GiB, "
                      f"{share:.0f} % of the GPU's time")


if __name__ == "__main__":
    main()
