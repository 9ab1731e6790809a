"""thinlab.data.downloader against a real local HTTP server (127.0.0.1, Range-aware): good, corrupt,
truncated and malicious archives, interrupted transfers resumed, checksum mismatches, the CLI."""
from __future__ import annotations

import hashlib
import io
import re
import tarfile

import pytest
from data_helpers import RangeServer, speech_archive, tar_gz

from thinlab.data import (ARCHIVES, Archive, ArchiveError, ChecksumError, DataError, DownloadError,
                          UnsafeArchiveError, download, extract_archive, resolve_source, scan)
from thinlab.data.__main__ import main
from thinlab.data.downloader import Interrupted

NAME = "speech_commands_test_set_v0.02.tar.gz"


def _spec(data: bytes, *, sha=None, name=NAME) -> Archive:
    return Archive("test-v2", name, len(data), sha or hashlib.sha256(data).hexdigest(), ("yes", "no", "up"),
                   ("_background_noise_",))


@pytest.fixture()
def server():
    with RangeServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def good() -> bytes:
    return speech_archive()


def _tops(path):
    return sorted(p.name for p in path.iterdir())


def test_download_extracts_only_the_words_asked(server, good, tmp_cache):
    server.files[NAME] = good
    dest = download("test-v2", words="yes", url=server.url, archive=_spec(good), progress=False)
    assert dest == tmp_cache / "speech_commands" / "test-v2"
    assert _tops(dest) == [".thinlab-complete.json", "LICENSE", "_background_noise_", "testing_list.txt",
                           "validation_list.txt", "yes"]
    assert (tmp_cache / "downloads" / NAME).read_bytes() == good
    assert not (tmp_cache / "downloads" / (NAME + ".part")).exists()
    assert resolve_source("test-v2").path == dest and resolve_source("auto").kind == "test-v2"
    # more words later: the verified archive is reused (no new request) and earlier words are kept
    n_requests = len(server.log)
    download("test-v2", words=["no"], url=server.url, archive=_spec(good), progress=False)
    assert len(server.log) == n_requests
    assert {"yes", "no"} <= set(_tops(dest)) and "up" not in _tops(dest)
    assert sorted(c.folder for c in scan(dest).clips) == ["no"] * 3 + ["yes"] * 3


def test_interrupted_download_is_resumed(server, good, tmp_cache):
    server.files[NAME] = good
    server.cut[NAME] = 1000
    part = tmp_cache / "downloads" / (NAME + ".part")
    with pytest.raises(Interrupted, match=r"stopped after 1,000 of [\d,]+ bytes; the partial file .* is kept: "
                                          "run the same command again to resume"):
        download("test-v2", url=server.url, archive=_spec(good), progress=False, retries=0)
    assert part.stat().st_size == 1000
    dest = download("test-v2", url=server.url, archive=_spec(good), progress=False, retries=0)
    assert server.log[-1] == (NAME, "bytes=1000-")
    assert (tmp_cache / "downloads" / NAME).read_bytes() == good
    assert {"yes", "no", "up"} <= set(_tops(dest))


def test_interruption_is_retried_automatically(server, good, tmp_cache):
    server.files[NAME] = good
    server.cut[NAME] = 777
    download("test-v2", url=server.url, archive=_spec(good), progress=False, retries=1, verbose=False)
    assert [r for _, r in server.log] == [None, "bytes=777-"]


def test_server_ignoring_range_restarts_cleanly(server, good, tmp_cache):
    server.files[NAME] = good
    server.honour_range = False
    part = tmp_cache / "downloads" / (NAME + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 500)  # a stale partial file that the server will not resume
    download("test-v2", url=server.url, archive=_spec(good), progress=False)
    assert (tmp_cache / "downloads" / NAME).read_bytes() == good


def test_checksum_mismatch(server, good, tmp_cache):
    server.files[NAME] = good
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ChecksumError, match=rf"sha256 {hashlib.sha256(good).hexdigest()} differs from the "
                                            rf"published {wrong}.*removed; run the same command again"):
        download("test-v2", url=server.url, archive=_spec(good, sha=wrong), progress=False)
    assert not (tmp_cache / "downloads" / (NAME + ".part")).exists()
    assert not (tmp_cache / "downloads" / NAME).exists()
    assert not (tmp_cache / "speech_commands" / "test-v2").exists()


def test_http_error_names_the_url(server, tmp_cache):
    with pytest.raises(DownloadError, match=rf"HTTP 404 .* for {server.url}{NAME}"):
        download("test-v2", url=server.url, archive=_spec(b"abc"), progress=False)


def test_corrupt_archive_is_refused_and_keeps_old_data(server, good, tmp_cache):
    server.files[NAME] = good
    dest = download("test-v2", words="yes", url=server.url, archive=_spec(good), progress=False)
    before = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*"))
    corrupt = bytearray(good)
    corrupt[len(corrupt) // 2: len(corrupt) // 2 + 64] = bytes(64)
    (tmp_cache / "downloads" / NAME).unlink()
    server.files[NAME] = bytes(corrupt)
    with pytest.raises(ArchiveError, match=r"is corrupt or truncated .*nothing was extracted\. Delete it and "
                                           "download again"):
        download("test-v2", words="no", url=server.url, archive=_spec(bytes(corrupt)), progress=False)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == before
    assert [p.name for p in dest.parent.iterdir()] == ["test-v2"]  # no temporary folders left behind


def test_truncated_archive(tmp_path, good):
    arc = tmp_path / "cut.tar.gz"
    arc.write_bytes(good[: len(good) * 2 // 3])
    with pytest.raises(ArchiveError, match="cut.tar.gz is corrupt or truncated"):
        extract_archive(arc, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def _info(name, kind, **kw):
    info = tarfile.TarInfo(name)
    info.type = kind
    for k, v in kw.items():
        setattr(info, k, v)
    return info


@pytest.mark.parametrize("member, why", [
    (("../evil.wav", b"x"), r"climbs out of the target folder"),
    (("yes/../../evil.wav", b"x"), r"climbs out of the target folder"),
    (("/tmp/evil.wav", b"x"), r"an absolute path"),
    (_info("yes/link.wav", tarfile.SYMTYPE, linkname="/etc/passwd"), r"a symbolic link to '/etc/passwd'"),
    (_info("yes/hard.wav", tarfile.LNKTYPE, linkname="yes/a.wav"), r"a hard link to 'yes/a.wav'"),
    (_info("yes/fifo", tarfile.FIFOTYPE), r"a device or fifo"),
    (_info("yes/dev", tarfile.CHRTYPE, devmajor=1, devminor=3), r"a device or fifo"),
])
def test_unsafe_members_are_refused(tmp_path, member, why):
    arc = tmp_path / "evil.tar.gz"
    arc.write_bytes(tar_gz([("yes/a.wav", b"RIFF"), member]))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(UnsafeArchiveError, match=rf"refusing member .*{why}.*Nothing was extracted"):
        extract_archive(arc, work / "out", progress=False)
    assert list(work.iterdir()) == [] and not (tmp_path / "evil.wav").exists()


def test_unsafe_archive_through_download(server, tmp_cache):
    data = tar_gz([("yes/a.wav", b"RIFF"), ("../../escape.txt", b"x")])
    server.files[NAME] = data
    with pytest.raises(UnsafeArchiveError, match="escape.txt"):
        download("test-v2", url=server.url, archive=_spec(data), progress=False)
    assert not (tmp_cache / "speech_commands" / "test-v2").exists()


def test_a_users_own_folder_is_never_replaced(server, good, tmp_path, tmp_cache):
    server.files[NAME] = good
    mine = tmp_path / "my_recordings"
    (mine / "yes").mkdir(parents=True)
    (mine / "yes" / "me.wav").write_bytes(b"precious")
    with pytest.raises(DataError, match=r"refusing to replace .*my_recordings: it exists and was not written by "
                                        "thinlab .*choose a new or empty folder"):
        download("test-v2", dest=mine, url=server.url, archive=_spec(good), progress=False)
    assert (mine / "yes" / "me.wav").read_bytes() == b"precious" and server.log == []
    with pytest.raises(DataError, match="refusing to replace"):
        extract_archive(tmp_cache / "nothing.tar.gz", mine, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_recordings"]  # nothing else was created


def test_words_are_checked(tmp_cache):
    with pytest.raises(DataError, match=r"--words \['yess'\]: not words of the v2 archive; use some of backward"):
        download("v2", words="yes,yess", progress=False)
    with pytest.raises(DataError, match=r"which='v3': expected one of \['test-v2', 'v1', 'v2'\]"):
        download("v3")


def test_named_source_not_downloaded_says_make_data(tmp_cache):
    with pytest.raises(DataError, match=r"not downloaded yet .*Run `make data`"):
        resolve_source("test-v2")
    with pytest.raises(DataError, match=r"Run `make data WHICH=v2`"):
        resolve_source("v2")


def test_cli_download_as_the_makefile_calls_it(server, good, tmp_cache, monkeypatch, capsys):
    server.files[NAME] = good
    monkeypatch.setitem(ARCHIVES, "test-v2", _spec(good))
    monkeypatch.setenv("THINLAB_DOWNLOAD_URL", server.url)
    assert main(["download", "test-v2", "--words", "yes,no", "--no-progress"]) == 0
    assert {"yes", "no"} <= set(_tops(tmp_cache / "speech_commands" / "test-v2"))
    assert main(["download", "test-v2", "--words", "maybe", "--no-progress"]) == 2
    assert "error: --words ['maybe']: not words of the test-v2 archive; use some of yes, no, up" in \
        capsys.readouterr().err


def test_published_archives_are_the_documented_ones():
    assert {k: (a.filename, a.size) for k, a in ARCHIVES.items()} == {
        "test-v2": ("speech_commands_test_set_v0.02.tar.gz", 112_563_277),
        "v1": ("speech_commands_v0.01.tar.gz", 1_488_293_908),
        "v2": ("speech_commands_v0.02.tar.gz", 2_428_923_189)}
    assert all(re.fullmatch(r"[0-9a-f]{64}", a.sha256) for a in ARCHIVES.values())


def test_tar_helper_makes_what_the_tests_think(tmp_path):
    """The malicious-archive tests rely on tar_gz writing members verbatim (no sanitising)."""
    with tarfile.open(fileobj=io.BytesIO(tar_gz([("../x", b"1"), _info("l", tarfile.SYMTYPE, linkname="/a")]))) as t:
        assert [(m.name, m.issym()) for m in t.getmembers()] == [("../x", False), ("l", True)]


def test_marker_records_the_contents_and_a_deleted_word_is_noticed(server, good, tmp_cache, capsys):
    """Finding 4: the marker is checked against the folder; a deleted word folder is extracted again."""
    import json
    import shutil

    server.files[NAME] = good
    dest = download("test-v2", words="yes,no", url=server.url, archive=_spec(good), progress=False)
    marker = json.loads((dest / ".thinlab-complete.json").read_text())
    assert marker["contents"] == {"yes": 3, "no": 3, "_background_noise_": 1,
                                  ".": ["LICENSE", "testing_list.txt", "validation_list.txt"]}
    shutil.rmtree(dest / "no")
    with pytest.raises(DataError, match="not downloaded yet"):  # an incomplete folder is not offered as data
        resolve_source("test-v2")
    n_requests = len(server.log)
    capsys.readouterr()
    download("test-v2", words="yes,no", url=server.url, archive=_spec(good), progress=False)
    assert "is incomplete (no/ missing); extracting again" in capsys.readouterr().out
    assert len(server.log) == n_requests  # from the kept archive, no new download
    assert sorted(c.folder for c in scan(dest).clips) == ["no"] * 3 + ["yes"] * 3
    assert resolve_source("test-v2").path == dest
    (dest / "yes" / sorted(p.name for p in (dest / "yes").iterdir())[0]).unlink()  # one clip gone
    download("test-v2", words="yes", url=server.url, archive=_spec(good), progress=False)
    assert "yes/ holds 2 files, 3 were extracted" in capsys.readouterr().out
    assert len(list((dest / "yes").iterdir())) == 3


def test_a_corrupt_marker_is_replaced_not_refused(server, good, tmp_cache, capsys):
    server.files[NAME] = good
    dest = download("test-v2", words="yes", url=server.url, archive=_spec(good), progress=False)
    (dest / ".thinlab-complete.json").write_text("{ not json")
    again = download("test-v2", words="yes", url=server.url, archive=_spec(good), progress=False)
    assert again == dest and resolve_source("test-v2").path == dest
    assert "extracted yes into" in capsys.readouterr().out


def test_an_archive_without_clips_fails(tmp_path):
    arc = tmp_path / "empty.tar.gz"
    arc.write_bytes(tar_gz([("./LICENSE", b"CC BY 4.0"), ("./_background_noise_/n.wav", b"RIFF")]))
    with pytest.raises(ArchiveError, match=r"holds no clips of any word .*delete the archive and download the right"):
        extract_archive(arc, tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.tar.gz"]
