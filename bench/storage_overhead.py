"""What a bucket costs a sweep against a local folder: the quickstart's model (MiniLM, 270 MB
checkpoints) shrunk to short trials, run once with `storage:` a temporary folder and once with
`storage: s3://...` on moto's S3 server on 127.0.0.1, side by side.

    python bench/storage_overhead.py [--samples 500] [--trials 2]

Prints, for each storage, the command's wall time and the sweep's (summary.json), the mean
trial time, and the bytes and objects the run left in its storage; then the ratios. moto keeps
objects in memory, so this measures the client side of the uploads (pyarrow, Ray's syncing,
hpo's mirror), not a real network.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from quickstart_runs import REPO, run_quickstart, short_trials

sys.path.insert(0, str(REPO))

from tests.helpers import bucket_objects, local_s3_server  # noqa: E402

BUCKET = "bench"


def run(storage: str, samples: int, trials: int, env: dict[str, str], cache: str) -> dict:
    env = {**env, "HPO_CACHE": cache}
    wall, _ = run_quickstart(storage, short_trials(samples, trials), env)
    return {"wall_s": round(wall, 1)}


def with_summary(result: dict, summary: dict, sizes: dict[str, int]) -> dict:
    return {
        **result,
        "sweep_wall_s": summary["wall_s"],
        "trial_time_s_mean": summary["trial_time_s"]["mean"],
        "objects": len(sizes),
        "megabytes": round(sum(sizes.values()) / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--trials", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch, "runs")
        local = run(str(folder), args.samples, args.trials, {}, scratch)
        files = {str(p): p.stat().st_size for p in folder.rglob("*") if p.is_file()}
        local = with_summary(
            local, json.loads((folder / "quickstart" / "summary.json").read_text()), files
        )
        with local_s3_server(BUCKET) as env:
            bucket = run(f"s3://{BUCKET}/runs", args.samples, args.trials, env, scratch)
            sizes = bucket_objects(env, BUCKET, "runs")
            mirror = Path(scratch, "storage", "s3", BUCKET, "runs", "quickstart")
            bucket = with_summary(bucket, json.loads((mirror / "summary.json").read_text()), sizes)
    print(
        json.dumps(
            {
                "local": local,
                "s3": bucket,
                "wall_ratio_s3_over_local": round(bucket["wall_s"] / local["wall_s"], 2),
                "trial_time_ratio_s3_over_local": round(
                    bucket["trial_time_s_mean"] / local["trial_time_s_mean"], 2
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
