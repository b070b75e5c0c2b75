"""The report: the summary table, the targets and the accuracy-against-time plot."""
import math

from .config import FF, REF


def fmt(x, spec=".2e"):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, spec)


def print_table(rows):
    head = (f"{'workload':<10} {'method':<15} {'runs':>4} {'time/run [s]':>12} {'x fastflow':>10} "
            f"{'theta err med':>13} {'theta err max':>13} {'event dt max':>12} {'matched':>9} {'slides ok':>9}  status")
    print(head)
    print("-" * len(head))
    for r in rows:
        matched = f"{r['events_matched']}/{r['events_ref']}" if r["events_ref"] else "-"
        slides_ok = f"{r['slides_followed']}/{r['slide_runs']}" if r["slide_runs"] else "-"
        status = ", ".join(f"{k} {v}" for k, v in r["statuses"].items())
        t = (">" if r["time_is_lower_bound"] else "") + fmt(r["time_per_run"])
        print(f"{r['workload']:<10} {r['method']:<15} {r['runs']:>4} {t:>12} "
              f"{fmt(r['ratio_to_fastflow'], '.3g'):>10} {fmt(r['theta_error_median']):>13} "
              f"{fmt(r['theta_error_max']):>13} {fmt(r['event_dt_max']):>12} {matched:>9} {slides_ok:>9}  {status}")


def per_run_ratios(workloads, slow, fast):
    """{workload: [time of `slow` / time of `fast` on the same problem]} over the problems both finished."""
    out = {}
    for w in workloads:
        fast_t = {r["seed"]: r["time"] for r in w.runs if r["method"] == fast and r["status"] != "interrupted"}
        out[w.name] = [r["time"] / fast_t[r["seed"]] for r in w.runs
                       if r["method"] == slow and r["seed"] in fast_t and r["time"] == r["time"]]
    return out


def targets(rows, paper, rhs, scaling, memory, workloads=()):
    out = {}
    if paper:
        ff_errs = [e for e in paper["gd_vs_fastflow_error"] if e["gd"] is not None and e["fastflow"] is not None]
        ratio = paper["ratio_gd_total_to_fastflow_1_thread"]
        out["rank288_vs_gd"] = dict(
            figure=ratio, target=">= 1e4 x, and at least as accurate",
            accurate=all(e["fastflow"] <= e["gd"] for e in ff_errs) if ff_errs else None,
            met=bool(ratio >= 1e4 and ff_errs and all(e["fastflow"] <= e["gd"] for e in ff_errs)))
    same = {}
    for r in rows:
        if r["method"] == "scipy@1e-10" and r["ratio_to_fastflow"] is not None:
            same[r["workload"]] = r["ratio_to_fastflow"]
    if same:
        out["vs_scipy_same_rtol"] = dict(figure=same, min=min(same.values()), target=">= 100 x for n <= 100",
                                         per_run_where_fastflow_finished=per_run_ratios(workloads, "scipy@1e-10", FF),
                                         met=min(same.values()) >= 100)
    if rhs:
        out["rhs_vs_two_matmuls"] = dict(figure=rhs["ratio_rhs_to_matmuls"], target="<= 3 x",
                                         met=rhs["ratio_rhs_to_matmuls"] <= 3)
    if scaling and "rank2x2" in scaling:
        s = {k: v["speedup_2_threads"] for k, v in scaling.items()}
        est = {k: v.get("speedup_2_threads_on_free_cores_estimate") for k, v in scaling.items()}
        cores = {k: v[2]["cores_obtained"] for k, v in scaling.items()}
        out["flow_many_2_threads"] = dict(figure=s, estimate_on_free_cores=est, cores_obtained_2_threads=cores,
                                          target=">= 1.8 x on 1000 trajectories",
                                          met=all(v >= 1.8 for v in s.values()))
    if memory and memory.get("linear_fit_n10"):
        rows_ok = [r for r in memory["rows"] if "error" not in r]
        per_param = {f"n={r['n']} width={r['width']} p={r['n_params']}": r["peak_bytes_per_trajectory"] / r["n_params"]
                     for r in rows_ok}
        out["memory_per_trajectory"] = dict(figure=memory["linear_fit_n10"], peak_bytes_per_parameter=per_param,
                                            target="O(parameters)")
    return out


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    markers = {"gd-numpy": "s", "gd-torch": "P", REF: "*", "scipy@1e-10": "^", FF: "o", "fastflow@1e-12": "D"}
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    colors = dict(zip(workloads, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    floor = 1e-16
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for r in rows:
        t, med, top = r["time_per_run"], r["theta_error_median"], r["theta_error_max"]
        if t is None or t != t:
            continue
        if r["method"] == REF:
            med = top = floor
        if med is None:
            continue
        c = colors[r["workload"]]
        ax.plot([t, t], [max(med, floor), max(top, floor)], color=c, lw=1, alpha=0.6)
        ax.scatter(t, max(med, floor), marker=markers[r["method"]], s=60, color=c,
                   facecolors="none" if r["time_is_lower_bound"] else c,
                   edgecolors="k" if r["method"] == REF else c)
    for m, mk in markers.items():
        if any(r["method"] == m for r in rows):
            ax.scatter([], [], marker=mk, color="gray", label=m + (" (reference, drawn at 1e-16)" if m == REF else ""))
    for wl, c in colors.items():
        ax.scatter([], [], marker="o", color=c, label=wl)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wall time per run [s] (hollow: some runs stopped at the time limit, a lower bound)")
    ax.set_ylabel("relative error of the final theta vs scipy@1e-12\n(marker: median over runs, line: up to max)")
    ax.set_title("fastflow vs GD vs SciPy yardstick (same machine, same run)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
