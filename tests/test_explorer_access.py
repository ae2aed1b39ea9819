"""The explorer's access token (rnnlens.explorer.access and its use in rnnlens.explorer.server): the host
classification, and a real server in token-required mode on 127.0.0.1 spoken to with urllib."""

from __future__ import annotations

import urllib.error
import urllib.request
from http.cookiejar import CookieJar

import pytest

from rnnlens.cli import main
from rnnlens.exceptions import RnnlensError
from rnnlens.explorer.access import Access, check_token, is_loopback
from rnnlens.explorer.server import make_server, serve_in_thread
from _explorer import serve_process  # tests/ is on sys.path (pytest rootdir-relative imports)


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.12.0.9", True), ("localhost", True), ("LocalHost", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("", False), ("::", False), ("192.168.1.5", False),
    ("10.0.0.1", False), ("::ffff:10.0.0.1", False), ("example.com", False), ("localhost.example", False),
    ("128.0.0.1", False)])
def test_host_classification(host, loopback):
    assert is_loopback(host) is loopback


def test_access_rule_follows_the_host_unless_forced():
    assert Access.for_host("127.0.0.1", 8000).token is None
    assert Access.for_host("localhost", 8000, required=True).token is not None
    assert Access.for_host("0.0.0.0", 8000, required=False).token is None
    a, b = Access.for_host("0.0.0.0", 8000), Access.for_host("0.0.0.0", 8000)
    assert a.token != b.token and len(a.token) >= 32 and check_token(a.token) == a.token
    assert a.cookie_name == "rnnlens_token_8000" != Access.for_host("::", 8001).cookie_name
    assert Access.for_host("127.0.0.1", 9, token="x" * 20).token == "x" * 20  # an explicit token is required
    for bad in ("short", "has space in it......", "semi;colon-0123456789", "x" * 129):
        with pytest.raises(RnnlensError, match="--token"):
            Access.for_host("0.0.0.0", 8000, token=bad)


def test_the_token_parameter_is_split_from_the_query():
    a = Access("T" * 20)
    assert a.split_query("first=1&token=abc&count=2") == ("abc", "first=1&count=2")
    assert a.split_query("pos=3") == (None, "pos=3")
    assert a.split_query("token=a&token=b") == ("", "")
    assert Access().split_query("token=abc") == (None, "token=abc")  # open: nothing is taken out
    assert a.matches("T" * 20) and not a.matches("T" * 19) and not a.matches("") and not a.matches(None)
    assert a.cookie_token(["other=1; " + a.set_cookie().split(";")[0]]) == "T" * 20
    assert a.cookie_token(['bad"cookie']) is None


def fetch(opener: urllib.request.OpenerDirector, url: str | urllib.request.Request) -> tuple[int, bytes, dict]:
    try:
        with opener.open(url, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


@pytest.fixture(scope="module")
def guarded(tiny):
    srv = make_server(tiny[1], "127.0.0.1", 0, token_required=True)
    serve_in_thread(srv)
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_guarded_server_refuses_requests_without_the_token(guarded):
    base = f"http://127.0.0.1:{guarded.server_address[1]}"
    plain = urllib.request.build_opener()
    assert guarded.token and guarded.url == f"{base}/?token={guarded.token}"
    for path in ("/", "/app.js", "/api/info", "/api/lines?first=0&count=2", f"/?token={guarded.token[:-1]}",
                 f"/api/info?token={guarded.token}x", "/?token=", f"/?token={guarded.token}&token={guarded.token}"):
        status, body, headers = fetch(plain, base + path)
        assert status == 403, path
        assert headers["Content-Type"].startswith("text/plain") and b"token" in body and len(body) < 200
        assert "Set-Cookie" not in headers and b"chars" not in body
    forged = urllib.request.Request(base + "/api/info", headers={"Cookie": f"{Access(guarded.token).cookie_name}"
                                                                            f"={guarded.token}"})
    assert fetch(plain, forged)[0] == 403  # the right value under another port's cookie name
    assert fetch(plain, urllib.request.Request(base + "/api/info", headers={
        "Cookie": f"{guarded.access.cookie_name}=nottheright0123456789"}))[0] == 403


def test_the_token_opens_the_page_and_its_cookie_the_json_endpoints(guarded, tiny):
    import json

    base = f"http://127.0.0.1:{guarded.server_address[1]}"
    jar = CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    status, body, headers = fetch(browser, guarded.url)
    assert status == 200 and b"<html" in body.lower()
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{guarded.access.cookie_name}={guarded.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert headers["Referrer-Policy"] == "no-referrer"
    assert [c.value for c in jar] == [guarded.token]
    status, body, headers = fetch(browser, base + "/api/info")  # no token in the URL: the cookie carries it
    assert status == 200 and json.loads(body)["chars"] == tiny[1].n and "Set-Cookie" not in headers
    status, body, _ = fetch(browser, base + "/api/lines?first=0&count=2&color=loss")
    assert status == 200 and len(json.loads(body)["starts"]) == 2
    assert fetch(browser, base + "/app.js")[0] == 200
    # the token in the URL works on an endpoint too and is not taken for one of its parameters
    status, body, _ = fetch(urllib.request.build_opener(), f"{base}/api/predict?pos=3&token={guarded.token}")
    assert status == 200 and "top" in json.loads(body)
    # a wrong token in the URL is refused even with the right cookie
    assert fetch(browser, base + "/api/info?token=wrong0123456789abcdef")[0] == 403
    assert fetch(browser, base + "/api/nope")[0] == 404  # past the token, errors are as before


def test_loopback_stays_open_by_default(tiny):
    srv = make_server(tiny[1], "127.0.0.1", 0)
    serve_in_thread(srv)
    try:
        port = srv.server_address[1]
        assert srv.token is None and srv.url == f"http://127.0.0.1:{port}/"
        for path in ("/", "/api/info"):
            status, _, headers = fetch(urllib.request.build_opener(), f"http://127.0.0.1:{port}{path}")
            assert status == 200 and "Set-Cookie" not in headers and "Referrer-Policy" not in headers
        assert fetch(urllib.request.build_opener(), f"http://127.0.0.1:{port}/api/info?token=x")[0] == 400
    finally:
        srv.shutdown()
        srv.server_close()


def test_serve_prints_the_url_with_its_token(tiny, capsys):
    assert main(["serve", str(tiny[0]), "--token", "too-short"]) == 2
    err = capsys.readouterr().err
    assert "--token" in err and "Traceback" not in err
    token = "given-token_0123456789"
    with serve_process(tiny[0], tiny[2], "--token", token) as (m, line):
        assert m.group(3) == token and "access needs the token" in line
        plain = urllib.request.build_opener()
        assert fetch(plain, m.group(1) + "api/info")[0] == 403
        assert fetch(plain, f"{m.group(1)}api/info?token={token}")[0] == 200
