"""The web view's routes on a real router: the page is public and holds no data, the
overview and the logs need a caller, parameters are checked, unknown names are 404."""

from __future__ import annotations

from lambdakube_router.access import AuthSettings
from tests.router.conftest import function

HELLO = """
def handler(event, context):
    print("said hello")
    return "hello"
"""


async def test_page_is_public_and_its_data_needs_a_token(make_router, tmp_path):
    path = tmp_path / "tokens.csv"
    path.write_text("tok,alice,1\n")
    router = await make_router(function("secretive", HELLO), auth=AuthSettings(mode="token-file", token_file=str(path)))
    s = router.client.session
    async with s.get(router.url("/lambdakube/ui")) as resp:
        page = await resp.text()
        assert resp.status == 200 and resp.content_type == "text/html"
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert "secretive" not in page and "/lambdakube/v1/namespaces/" in page
    for path_ in (
        "/lambdakube/v1/namespaces/default/overview",
        "/lambdakube/v1/namespaces/default/functions/secretive/logs",
    ):
        async with s.get(router.url(path_)) as resp:
            assert resp.status == 401, path_
        async with s.get(router.url(path_), headers={"Authorization": "Bearer tok"}) as resp:
            assert resp.status == 200, path_


async def test_overview_and_logs(make_router):
    router = await make_router(function("hello", HELLO, reservedConcurrency=2))
    assert (await router.invoke("hello"))[0] == 200
    view = await router.get_json("/lambdakube/v1/namespaces/default/overview")
    (fn,) = view["functions"]
    assert fn["name"] == "hello" and fn["counts"]["idle"] == 1 and fn["reservedGranted"] == 2
    assert fn["recent"]["invocations"] == 1 and fn["recent"]["p50Ms"] is not None
    (env,) = fn["environments"]
    assert env["state"] == "idle" and env["invocations"] == 1 and env["ageSeconds"] >= 0
    assert view["quota"]["granted"] == {"hello": 2} and view["quota"]["reserved"] == 2

    logs = await router.get_json("/lambdakube/v1/namespaces/default/functions/hello/logs?limit=100000")
    assert logs["supported"] is True and [e["id"] for e in logs["environments"]] == [env["id"]]
    assert "said hello" in logs["environments"][0]["log"]

    empty = await router.get_json("/lambdakube/v1/namespaces/nowhere/overview")
    assert empty == {"namespace": "nowhere", "quota": None, "functions": []}
    s = router.client.session
    for path, status in {
        "/lambdakube/v1/namespaces/Not_A_Name/overview": 400,
        "/lambdakube/v1/namespaces/default/functions/hello/logs?limit=0": 400,
        "/lambdakube/v1/namespaces/default/functions/hello/logs?limit=1&limit=2": 400,
        "/lambdakube/v1/namespaces/default/functions/nothing/logs": 404,
    }.items():
        async with s.get(router.url(path)) as resp:
            body = await resp.json()
            assert resp.status == status and body["errorType"] == resp.headers["x-amzn-ErrorType"], path
