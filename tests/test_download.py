"""Tests for rnnlens.data.download and the `rnnlens data` command, offline (local HTTP server, tiny tarballs)."""
from __future__ import annotations

import argparse
import hashlib
import http.server
import io
import json
import os
import random
import socket
import tarfile
import threading
from pathlib import Path

import pytest

from rnnlens.data import download
from rnnlens.commands import data as data_cmd
from rnnlens.data.download import build_linux, download_warpeace, gutenberg_body, linux_corpus_bytes
from rnnlens.exceptions import RnnlensError

BOM = b"\xef\xbb\xbf"
BOOK = "\"Well, Prince, so Genoa\nand Lucca are now \u00e9tats.\n\nCHAPTER II\n\nAnna Pavlovna\n"
FAKE = (BOM + b"The Project Gutenberg eBook of War and Peace\r\n\r\n"
        b"*** START OF THE PROJECT GUTENBERG EBOOK WAR AND PEACE ***\n\n\n"
        + BOOK.encode("utf-8") + b"\n\n*** END OF THE PROJECT GUTENBERG EBOOK WAR AND PEACE ***\nlicence\n")


@pytest.fixture
def server():
    """A local HTTP server: /pg2600.txt serves FAKE, anything else is 404. Yields its base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/pg2600.txt":
                self.send_response(200)
                self.send_header("Content-Length", str(len(FAKE)))
                self.end_headers()
                self.wfile.write(FAKE)
            else:
                self.send_error(404, "Not Found")

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_strips_gutenberg_and_uses_crlf_and_bom(server, tmp_path):
    res = download_warpeace(tmp_path, url=f"{server}/pg2600.txt", timeout=10)
    expected = BOM + BOOK.encode("utf-8").replace(b"\n", b"\r\n")
    data = (tmp_path / "warpeace_input.txt").read_bytes()
    assert data == expected
    assert res.path == tmp_path / "warpeace_input.txt" and res.size == len(expected)
    assert res.sha256 == hashlib.sha256(expected).hexdigest()
    assert res.verified is False and "not verified" in res.note and "revised" in res.note
    assert list(tmp_path.iterdir()) == [res.path]  # no temp files left behind


def test_download_errors(server, tmp_path):
    with pytest.raises(RnnlensError, match=r"could not download .*HTTP 404.*--url"):
        download_warpeace(tmp_path, url=f"{server}/missing.txt", timeout=10)
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RnnlensError, match="could not download"):
        download_warpeace(tmp_path, url=f"http://127.0.0.1:{port}/pg2600.txt", timeout=10)
    assert not (tmp_path / "warpeace_input.txt").exists()
    with pytest.raises(RnnlensError, match="START OF"):
        gutenberg_body(b"no markers here\n")


def test_verified_file_is_kept_unless_forced(server, tmp_path, monkeypatch):
    res = download_warpeace(tmp_path, url=f"{server}/pg2600.txt", timeout=10)
    monkeypatch.setattr(download, "WARPEACE_SHA256", res.sha256)  # pretend this is the authors' copy
    kept = download_warpeace(tmp_path, url=f"{server}/missing.txt", timeout=10)  # no network needed
    assert kept.verified and "already present" in kept.note
    with pytest.raises(RnnlensError, match="404"):
        download_warpeace(tmp_path, url=f"{server}/missing.txt", timeout=10, force=True)
    assert hashlib.sha256(res.path.read_bytes()).hexdigest() == res.sha256  # failure destroyed nothing
    again = download_warpeace(tmp_path, url=f"{server}/pg2600.txt", timeout=10, force=True)
    assert again.verified and again.note.startswith("verified")


# --- Linux corpus --------------------------------------------------------------------------------

def _tree(seed: int = 0) -> dict[str, bytes]:
    """Regular files of a fake source tree (paths inside the tree)."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    for i in range(30):
        folder = rng.choice(["kernel", "fs/ext4", "drivers/net/wireless", "include/linux", ""])
        ext = rng.choice([".c", ".h", ".c", ".txt", ".S"])
        body = f"/* file {i} \u00e9 */\nint f{i}(void) {{ return {i}; }}\n" * rng.randint(1, 4)
        files[f"{folder}/f{i}{ext}".lstrip("/")] = body.encode("utf-8")
    files["kernel/latin1.c"] = b"/* caf\xe9 */\nint x;\n" * 3  # not UTF-8: skipped
    return files


def _make_tarball(path: Path, files: dict[str, bytes], mode: str) -> None:
    with tarfile.open(path, mode) as tar:
        top = tarfile.TarInfo("linux-9.9")
        top.type = tarfile.DIRTYPE
        tar.addfile(top)
        for name, data in files.items():
            info = tarfile.TarInfo(f"linux-9.9/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("linux-9.9/kernel/alias.c")  # symlinks are not regular files
        link.type = tarfile.SYMTYPE
        link.linkname = "fork.c"
        tar.addfile(link)
        folder = tarfile.TarInfo("linux-9.9/odd.h")  # nor are directories, whatever their name
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)


def _expected(files: dict[str, bytes], target: int, seed: int) -> tuple[bytes, int]:
    """Brute force of the recipe straight from the file dict."""
    names = sorted(n for n in files if n.endswith((".c", ".h")))
    random.Random(seed).shuffle(names)
    out, used = b"", 0
    for n in names:
        try:
            files[n].decode("utf-8")
        except UnicodeDecodeError:
            continue
        out += files[n]
        used += 1
        if len(out) >= target:
            break
    out = out[:target]
    while True:
        try:
            out.decode("utf-8")
            return out, used
        except UnicodeDecodeError:
            out = out[:-1]


@pytest.mark.parametrize("suffix, mode", [(".tar", "w"), (".tar.gz", "w:gz"), (".tar.xz", "w:xz")])
def test_build_linux_matches_brute_force(tmp_path, suffix, mode):
    files = _tree()
    tarball = tmp_path / f"src{suffix}"
    _make_tarball(tarball, files, mode)
    for target in (700, 1001, 1500):
        for seed in (2015, 7):
            data, used = linux_corpus_bytes(tarball, target, seed)
            assert (data, used) == _expected(files, target, seed)
    res = build_linux(tarball, tmp_path / "out", target_size=1001)
    assert res.path.read_bytes() == _expected(files, 1001, 2015)[0]
    assert res.files_used == _expected(files, 1001, 2015)[1]
    assert not res.verified and "custom size" in res.note


def test_build_linux_rereads_when_files_are_skipped(tmp_path, monkeypatch):
    """With no read-ahead slack, every skipped non-UTF-8 file forces another pass; result is unchanged."""
    files = {f"d/f{i}.c": (b"\xff" if i % 2 else b"") + f"int a{i};\n".encode() * 5 for i in range(20)}
    tarball = tmp_path / "src.tar"
    _make_tarball(tarball, files, "w")
    monkeypatch.setattr(download, "READ_SLACK_FRACTION", 0.0)
    monkeypatch.setattr(download, "READ_SLACK_BYTES", 0)
    passes = []
    real = download._read_members
    monkeypatch.setattr(download, "_read_members", lambda t, w, p=False: passes.append(len(w)) or real(t, w, p))
    assert linux_corpus_bytes(tarball, 200, 3) == _expected(files, 200, 3)
    assert len(passes) > 1


def test_build_linux_errors(tmp_path):
    with pytest.raises(RnnlensError, match="not found"):
        linux_corpus_bytes(tmp_path / "nope.tar.xz", 100)
    (tmp_path / "junk.tar.xz").write_bytes(b"this is not a tarball at all" * 40)
    with pytest.raises(RnnlensError, match="tar archive"):
        linux_corpus_bytes(tmp_path / "junk.tar.xz", 100)
    _make_tarball(tmp_path / "small.tar", {"a.c": b"int x;\n"}, "w")
    with pytest.raises(RnnlensError, match="only 7 bytes"):
        build_linux(tmp_path / "small.tar", tmp_path / "out", target_size=100)
    assert not (tmp_path / "out" / "linux_input.txt").exists()


REAL_TARBALL = Path(os.environ.get("RNNLENS_LINUX_TARBALL", "/usr/src/linux-source-6.1.tar.xz"))


@pytest.mark.slow
@pytest.mark.skipif(not REAL_TARBALL.is_file(), reason=f"{REAL_TARBALL} not present (apt install linux-source-6.1, or set RNNLENS_LINUX_TARBALL)")
def test_build_linux_real_tarball(tmp_path):
    res = build_linux(REAL_TARBALL, tmp_path)
    assert res.verified and res.size == 6_206_996 and res.files_used == 424


# --- the `rnnlens data` command ------------------------------------------------------------------

def _run(argv: list[str], capsys) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="rnnlens")
    data_cmd.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args), capsys.readouterr().out


def test_data_command(server, tmp_path, capsys):
    rc, out = _run(["data", "list", "--data-dir", str(tmp_path), "--json"], capsys)
    listing = json.loads(out)
    assert rc == 0 and listing["data_dir"] == str(tmp_path)
    by_name = {c["name"]: c for c in listing["corpora"]}
    assert not by_name["warpeace"]["present"] and by_name["pystdlib"]["present"]

    rc, out = _run(["data", "warpeace", "--data-dir", str(tmp_path), "--url", f"{server}/pg2600.txt",
                    "--json"], capsys)
    res = json.loads(out)
    assert rc == 0 and res["verified"] is False and res["path"] == str(tmp_path / "warpeace_input.txt")

    rc, out = _run(["data", "list", "--data-dir", str(tmp_path), "--json"], capsys)
    warpeace = {c["name"]: c for c in json.loads(out)["corpora"]}["warpeace"]
    assert warpeace["present"] and warpeace["checksum_ok"] is False and warpeace["size"] == res["size"]

    files = _tree()
    _make_tarball(tmp_path / "src.tar", files, "w")
    with pytest.raises(SystemExit):  # --tarball is required
        _run(["data", "linux", "--data-dir", str(tmp_path)], capsys)
    with pytest.raises(RnnlensError, match="fewer than the 6206996 needed"):
        _run(["data", "linux", "--data-dir", str(tmp_path), "--tarball", str(tmp_path / "src.tar")], capsys)
    rc, out = _run(["data", "list", "--data-dir", str(tmp_path)], capsys)
    assert rc == 0 and "checksum DIFFERS" in out and "linux" in out and "missing" in out


def test_data_list_shared(shared_data, capsys):
    rc, out = _run(["data", "list", "--data-dir", str(shared_data), "--json"], capsys)
    rows = {c["name"]: c for c in json.loads(out)["corpora"]}
    assert rows["warpeace"]["checksum_ok"] is True and rows["linux"]["checksum_ok"] is True
