"""The async store's wiring: the Event a quarantine posts on the router's Pod, and the
``--quarantine-corrupt-store`` flag."""

from __future__ import annotations

from lambdakube_router.asyncq.store import AsyncStore


# -- the Event about a quarantine -------------------------------------------------------------


class RecordingKube:
    """Stands in for ``KubeApi.create`` only: what is posted is the point here; a real
    API server is in the cluster tests."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.created: list[tuple[str, dict]] = []
        self.fail = fail

    async def create(self, path: str, body: dict) -> dict:
        if self.fail is not None:
            raise self.fail
        self.created.append((path, body))
        return body


async def quarantined_store(tmp_path) -> AsyncStore:
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "async.sqlite3").write_bytes(b"not a database " * 500)
    s = AsyncStore(tmp_path / "q")
    await s.open(quarantine_corrupt=True, wall_now=1_800_000_000.0)
    return s


async def test_a_quarantine_is_reported_on_the_router_pod(tmp_path):
    from lambdakube_router.app import report_quarantine
    from lambdakube_router.kube_api import ApiError

    s = await quarantined_store(tmp_path)
    try:
        assert s.health.ready and s.health.quarantined == 1
        kube = RecordingKube()
        env = {"POD_NAMESPACE": "lk", "POD_NAME": "router-abc", "HOSTNAME": "router-abc"}
        assert await report_quarantine(kube, s, wall_now=1.0, environ=env)  # type: ignore[arg-type]
        [(path, body)] = kube.created
        assert path == "/api/v1/namespaces/lk/events"
        assert body["involvedObject"]["name"] == "router-abc" and body["reason"] == "AsyncStoreQuarantined"
        assert "async.sqlite3.corrupt-20270115T080000Z" in body["message"]
        # no downward API, or the API refuses: logged, not raised
        assert not await report_quarantine(kube, s, wall_now=1.0, environ={})  # type: ignore[arg-type]
        refused = RecordingKube(ApiError(403, "Forbidden"))
        assert not await report_quarantine(refused, s, wall_now=1.0, environ=env)  # type: ignore[arg-type]
    finally:
        await s.close()


def test_the_quarantine_flag_reaches_the_router_config(tmp_path):
    from lambdakube_router.__main__ import build_parser, config_from_args

    base = ["--functions", str(tmp_path)]
    assert config_from_args(build_parser().parse_args(base)).quarantine_corrupt_store is False
    flagged = build_parser().parse_args([*base, "--quarantine-corrupt-store"])
    assert config_from_args(flagged).quarantine_corrupt_store is True
