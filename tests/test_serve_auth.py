"""Who may use a served dashboard: Panel's basic authentication, and the websocket's origin check.

One real server (``python -m dashboard.serve`` on 127.0.0.1, a free port) with a password from the environment;
plain HTTP requests and Bokeh websocket handshakes against it, as a browser would make them.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import event_loop
import pytest

from benchmarks.load import Server
from dashboard.serve import credentials
from engine.errors import DataError

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _opener(jar=None, follow=False):
    handlers = [urllib.request.HTTPCookieProcessor(jar if jar is not None else CookieJar())]
    if not follow:
        handlers.append(_NoRedirect())
    return urllib.request.build_opener(*handlers)


def _request(opener, url, data=None):
    """(status, headers, body) of a GET, or of a form POST when ``data`` is given; redirects are not followed."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with opener.open(url, data=body, timeout=120) as response:
            return response.status, response.headers, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode(errors="replace")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("projects")
    shutil.copytree(REPO / "projects" / "mnist", root / "mnist")
    log = tmp_path_factory.mktemp("auth") / "server.log"
    with Server(root, "mnist", log, env={"LATENT_INSPECTOR_PASSWORD": PASSWORD}, args=["--no-warm"]) as running:
        yield running


def _log_in(base, password):
    jar = CookieJar()
    opener = _opener(jar)
    status, _, page = _request(opener, f"{base}/login?next=%2Fapp")
    assert status == 200 and "password" in page.lower()
    status, headers, _ = _request(opener, f"{base}/login", {"username": "ada", "password": password})
    return jar, status, headers


def test_unauthenticated_request_is_sent_to_the_login_page(server):
    status, headers, body = _request(_opener(), f"{server.base}/app")
    assert status == 302
    assert urllib.parse.urlsplit(headers["Location"]).path.endswith("/login")
    assert "Bokeh" not in body  # nothing of the app
    # a made-up login cookie is not a login
    forged = _opener()
    forged.addheaders = [("Cookie", "user=ada")]
    assert _request(forged, f"{server.base}/app")[0] == 302


def test_wrong_password_is_refused(server):
    jar, status, headers = _log_in(server.base, "wrong " + PASSWORD)
    assert status == 302 and "error=" in headers["Location"]
    assert not any(c.name == "user" for c in jar)
    assert _request(_opener(jar), f"{server.base}/app")[0] == 302


def test_right_password_opens_the_app(server):
    jar, status, headers = _log_in(server.base, PASSWORD)
    assert status == 302 and urllib.parse.urlsplit(headers["Location"]).path == "/app"
    status, _, page = _request(_opener(jar), f"{server.base}/app")
    assert status == 200
    assert "Latent Inspector" in page and re.search(r'"token":"[^"]+"', page)


async def _websocket(base, origin, cookie, token):
    """The handshake's outcome: 'open' (and the server's first message is Bokeh's ACK) or 'refused CODE'."""
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    headers = {"Origin": origin, **({"Cookie": cookie} if cookie else {})}
    request = HTTPRequest(base.replace("http://", "ws://") + "/app/ws", headers=headers, request_timeout=60)
    try:
        conn = await websocket_connect(request, subprotocols=["bokeh", token])
    except HTTPClientError as exc:
        return f"refused {exc.code}"
    try:
        header = await asyncio.wait_for(conn.read_message(), 60)
    finally:
        conn.close()
    return "open" if header and '"ACK"' in header else f"open, unexpected {header!r}"


def test_websocket_only_from_the_servers_own_pages_and_logged_in(server):
    jar, _, _ = _log_in(server.base, PASSWORD)
    page = _request(_opener(jar), f"{server.base}/app")[2]
    token = re.search(r'"token":"([^"]+)"', page).group(1)
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar if c.name in ("user", "id_token"))
    own = f"http://127.0.0.1:{server.port}"

    def handshake(origin, with_cookie):
        return event_loop.run(_websocket(server.base, origin, cookie if with_cookie else None, token))

    assert handshake("http://evil.example", True) == "refused 403"
    assert handshake(f"http://evil.example:{server.port}", True) == "refused 403"
    assert handshake(own, False) == "refused 403"  # the page's token alone does not log in
    assert handshake(own, True) == "open"
    assert handshake(f"http://localhost:{server.port}", True) == "open"


def test_credentials_come_from_a_file_or_the_environment(tmp_path):
    assert credentials(environ={}) is None
    assert credentials(environ={"LATENT_INSPECTOR_PASSWORD": ""}) is None
    assert credentials(environ={"LATENT_INSPECTOR_PASSWORD": "s3cret"}) == "s3cret"
    plain = tmp_path / "password"
    plain.write_text("from the file\n")
    # the file wins over the environment
    assert credentials(plain, environ={"LATENT_INSPECTOR_PASSWORD": "s3cret"}) == "from the file"
    users = tmp_path / "users.json"
    users.write_text('{"ada": "one", "alan": "two"}')
    assert credentials(users) == {"ada": "one", "alan": "two"}


@pytest.mark.parametrize("text, expected", [
    ("", "is empty"),
    ("\n\n", "is empty"),
    ('{"ada": ', "not valid JSON"),
    ('{"ada": 3}', "non-empty password strings"),
    ("{}", "non-empty password strings"),
])
def test_bad_password_files_name_the_file(tmp_path, text, expected):
    path = tmp_path / "password"
    path.write_text(text)
    with pytest.raises(DataError, match=expected) as info:
        credentials(path)
    assert str(path) in str(info.value)


def test_a_missing_password_file_names_the_file(tmp_path):
    with pytest.raises(DataError, match="cannot be read") as info:
        credentials(tmp_path / "nowhere")
    assert "nowhere" in str(info.value)


def test_cli_serve_refuses_a_bad_password_file_before_serving(tmp_path, capsys, monkeypatch):
    from engine.cli import main

    monkeypatch.setenv("LATENT_INSPECTOR_PROJECTS", str(REPO / "projects"))
    empty = tmp_path / "password"
    empty.write_text("")
    assert main(["serve", "mnist", "--password-file", str(empty)]) == 2
    assert "is empty" in capsys.readouterr().err
