"""How long one move of the scaling explorer takes, against a 100 ms budget.

    python benchmarks/bench_widget_update.py [--repeats 30]

Times the full update callback as a slider move triggers it (observer → `cost.count_cost`
→ HTML table, SVG diagram, SVG curve → widget values), without a browser: the released
B0–B7 settings, the pure rule at several φ, and the extreme slider corners. Prints median
and max milliseconds per setting and PASS/MISS against the target.
"""

from __future__ import annotations

import argparse
import statistics
import time

from effnet_lab.lab.widgets import DEPTH_RANGE, RESOLUTION_RANGE, WIDTH_RANGE, scaling_explorer
from effnet_lab.paper.scaling import RELEASED

TARGET_MS = 100.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    explorer = scaling_explorer()
    cases: list[tuple[str, dict]] = [(f"{k.upper()} (dropdown)", {"preset": k}) for k in RELEASED]
    cases += [(f"φ = {phi:g} (slider)", {"phi": phi}) for phi in (-2.0, 1.0, 3.5, 6.0, 8.0)]
    cases += [
        ("smallest corner (manual)", {"width": WIDTH_RANGE[0], "depth": DEPTH_RANGE[0],
                                      "resolution": RESOLUTION_RANGE[0]}),
        ("largest corner (manual)", {"width": WIDTH_RANGE[1], "depth": DEPTH_RANGE[1],
                                     "resolution": RESOLUTION_RANGE[1]}),
        ("wide+shallow (manual)", {"width": WIDTH_RANGE[1], "depth": DEPTH_RANGE[0], "resolution": 224}),
        ("narrow+deep (manual)", {"width": WIDTH_RANGE[0], "depth": DEPTH_RANGE[1], "resolution": 224}),
    ]

    def move(settings: dict) -> int:
        """Drive the widgets as the browser does (setting .value fires the observers);
        return how many updates that was (a manual corner is three slider moves)."""
        if "preset" in settings:
            explorer.preset.value = settings["preset"]
            return 1
        if "phi" in settings:
            explorer.phi.value = settings["phi"]
            return 1
        for name, v in settings.items():
            getattr(explorer, name).value = v
        return len(settings)

    print(f"scaling explorer: per-update time, {args.repeats} repeats, target {TARGET_MS:.0f} ms")
    print(f"{'setting':28s} {'params':>12s} {'GFLOPs':>8s} {'median ms':>10s} {'max ms':>8s}")
    worst = 0.0
    for label, settings in cases:
        times = []
        for _ in range(args.repeats):
            # Start elsewhere, so that every timed move really changes a value.
            explorer.set_phi(0.0 if settings.get("phi") != 0.0 else 0.5)
            explorer.set_multipliers(1.01, 1.01, 228)
            t = time.perf_counter()
            n = move(settings)
            times.append((time.perf_counter() - t) * 1e3 / n)
        r = explorer.report
        med, mx = statistics.median(times), max(times)
        worst = max(worst, med)
        print(f"{label:28s} {r['params']:>12,} {r['gflops']:>8.3f} {med:>10.2f} {mx:>8.2f}  "
              f"{'PASS' if med < TARGET_MS else 'MISS'}")
    print(f"worst median {worst:.2f} ms: {'PASS' if worst < TARGET_MS else 'MISS'} (target {TARGET_MS:.0f} ms)")


if __name__ == "__main__":
    main()
