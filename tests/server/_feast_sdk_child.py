"""Feast's own SDK against ``featurestore serve`` (run by test_feast_sdk.py with a Feast virtualenv's python).

    python _feast_sdk_child.py URL WORKDIR STATS_PARQUET

Prints one JSON line: what each Feast call returned, or the error it raised.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def main(url: str, work: Path, stats_parquet: str) -> dict[str, Any]:
    import pandas as pd
    from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, PushSource, ValueType
    from feast.types import Float64, Int64

    work.mkdir(parents=True, exist_ok=True)
    (work / "feature_store.yaml").write_text(
        "project: feastsdk\nregistry: registry.db\nprovider: local\n"
        f"online_store:\n  type: remote\n  path: {url}\noffline_store:\n  type: file\n"
        "entity_key_serialization_version: 3\n"
    )
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    rider = Entity(name="rider", join_keys=["rider_id"], value_type=ValueType.STRING)
    batch = FileSource(name="stats_file", path=stats_parquet, timestamp_field="event_timestamp")
    stats = FeatureView(
        name="stats",
        entities=[driver],
        source=PushSource(name="stats", batch_source=batch),
        schema=[Field(name="a", dtype=Float64), Field(name="b", dtype=Int64)],
    )
    trips = FeatureView(
        name="trips", entities=[rider], source=batch, schema=[Field(name="n", dtype=Int64)], ttl=timedelta(0)
    )
    svc = FeatureService(name="svc", features=[stats[["b"]]])
    store = FeatureStore(repo_path=str(work))
    store.apply([driver, rider, stats, trips, svc])
    out: dict[str, Any] = {}

    def call(name: str, fn: Any) -> None:
        try:
            out[name] = {"ok": fn()}
        except Exception as exc:  # reported to the test, which names the call that failed
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:600]}

    now = datetime.now(UTC).replace(microsecond=0)
    when = now - timedelta(seconds=20)
    frame = pd.DataFrame({"driver_id": [701, 702], "event_timestamp": [when, when], "a": [0.5, 1.5], "b": [7, 8]})
    call("write_to_online_store", lambda: store.write_to_online_store("stats", frame))
    call(
        "read_after_write",
        lambda: store.get_online_features(["stats:b"], [{"driver_id": 701}, {"driver_id": 702}]).to_dict(),
    )
    pushed = frame.assign(b=[70, 80], event_timestamp=[when + timedelta(seconds=1)] * 2)
    call("push", lambda: store.push("stats", pushed))
    call(
        "read_after_push",
        lambda: store.get_online_features(
            ["stats:a", "stats:b"], {"driver_id": [701, 702, 9]}, full_feature_names=True
        ).to_dict(),
    )
    call(
        "statuses",
        lambda: [
            list(r.statuses) for r in store.get_online_features(["stats:b"], {"driver_id": [701, 9]}).proto.results
        ],
    )
    call("service", lambda: store.get_online_features(store.get_feature_service("svc"), [{"driver_id": 701}]).to_dict())
    call("materialize", lambda: store.materialize(now - timedelta(days=30), now, ["trips"]))
    call("read_after_materialize", lambda: store.get_online_features(["trips:n"], [{"rider_id": "r1"}]).to_dict())
    call("materialize_incremental", lambda: store.materialize_incremental(now + timedelta(seconds=1), ["trips"]))
    call("unknown_feature", lambda: store.get_online_features(["stats:nope"], [{"driver_id": 1}]).to_dict())
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3]), default=str))
