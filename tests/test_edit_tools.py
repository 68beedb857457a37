"""The edit and write tools on their own: exact replacements, atomic writes that keep the mode,
and every bad input refused with one clear error (outside the roots, through a symbolic link,
binary, too large, missing, not UTF-8, not a regular file)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agentcli.config import load_settings
from agentcli.errors import PluginError, ToolError
from agentcli.toolrun.executor import Executor, ToolContext
from agentcli.toolrun.host import atomic, files
from agentcli.toolrun.host.job import WithFiles
from agentcli.toolrun.manifest import load_tools, tool_from_manifest


@pytest.fixture(scope="module")
def loaded():
    return load_tools(load_settings(), warn=lambda line: None)


@pytest.fixture
def edit(loaded):
    return loaded["edit"].function()


@pytest.fixture
def write(loaded):
    return loaded["write"].function()


@pytest.fixture
def root(tmp_path, monkeypatch):
    r = tmp_path / "root"
    r.mkdir()
    (r / "notes.txt").write_text("alpha\nbeta\ngamma\n")
    (r / "sub").mkdir()
    evil = tmp_path / "root-evil"
    evil.mkdir()
    (evil / "secret.txt").write_text("secret\n")
    (tmp_path / "outside.txt").write_text("outside\n")
    monkeypatch.chdir(r)
    return r


def ctx(root: Path, *writable: Path, **options) -> ToolContext:
    return ToolContext("edit", options, cwd=str(root),
                       writable=tuple(str(p) for p in (root, *writable)))


def refused(fn, root, words, **args):
    before = {p: p.read_bytes() for p in root.parent.rglob("*") if p.is_file()}
    with pytest.raises(ToolError) as e:
        fn(context=ctx(root), **args)
    assert words in e.value.message, e.value.message
    after = {p: p.read_bytes() for p in root.parent.rglob("*") if p.is_file()}
    assert after == before  # nothing written, nothing left behind
    return e.value.message


def temps(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if atomic.TEMP_TAG in p.name]


# --- what they do -------------------------------------------------------------------------------

def test_edit_replaces_exactly_one_occurrence_and_names_the_version_written(edit, root):
    target = root / "notes.txt"
    result = edit(path="notes.txt", old="beta\n", new="BETA\nbeta two\n", context=ctx(root))
    assert target.read_text() == "alpha\nBETA\nbeta two\ngamma\n"
    assert result == "edited 'notes.txt': replaced 1 occurrence"
    assert isinstance(result, WithFiles)
    assert result.files == ((str(target), files.sha256(target.read_bytes())),)
    assert temps(root) == []


def test_edit_keeps_the_mode(edit, root):
    target = root / "notes.txt"
    target.chmod(0o640)
    edit(path="notes.txt", old="gamma", new="delta", context=ctx(root))
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    target.chmod(0o755)
    edit(path="notes.txt", old="delta", new="epsilon", context=ctx(root))
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_old_must_match_once_and_the_error_says_how_many(edit, root):
    (root / "many.txt").write_text("x = 1\nx = 1\nx = 1\n")
    message = refused(edit, root, "matches 3 places", path="many.txt", old="x = 1", new="x = 2")
    assert "replace_all" in message
    refused(edit, root, "was not found", path="many.txt", old="y = 1", new="y = 2")
    result = edit(path="many.txt", old="x = 1", new="x = 2", replace_all=True,
                  context=ctx(root))
    assert (root / "many.txt").read_text() == "x = 2\nx = 2\nx = 2\n"
    assert "replaced 3 occurrences" in result


def test_crlf_file_gets_a_hint_when_old_has_plain_newlines(edit, root):
    (root / "dos.txt").write_bytes(b"one\r\ntwo\r\n")
    refused(edit, root, "CRLF line endings", path="dos.txt", old="one\ntwo", new="x")
    edit(path="dos.txt", old="one\r\ntwo", new="1\r\n2", context=ctx(root))
    assert (root / "dos.txt").read_bytes() == b"1\r\n2\r\n"


def test_same_old_and_new_is_refused(edit, root):
    refused(edit, root, "the same", path="notes.txt", old="beta", new="beta")


def test_write_creates_a_file_and_its_folders_with_the_usual_mode(write, root):
    result = write(path="new/deeper/file.md", content="# title\n", context=ctx(root))
    target = root / "new" / "deeper" / "file.md"
    assert target.read_text() == "# title\n" and "new file" in result
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


def test_write_replaces_a_whole_file(write, root):
    result = write(path="notes.txt", content="only this\n", context=ctx(root))
    assert (root / "notes.txt").read_text() == "only this\n" and "was 3 lines" in result


# --- bad input: one clear error, nothing written ------------------------------------------------

@pytest.mark.parametrize("path", ["../outside.txt", "/etc/passwd", "sub/../../outside.txt",
                                  "../root-evil/secret.txt"])
def test_outside_the_roots_is_refused(edit, write, root, path):
    refused(edit, root, "outside the allowed folders", path=path, old="o", new="x")
    refused(write, root, "outside the allowed folders", path=path, content="x")


def test_symlink_escapes_are_refused(edit, write, root, tmp_path):
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    (root / "linkdir").symlink_to(tmp_path / "root-evil")
    refused(edit, root, "symbolic link", path="link.txt", old="outside", new="x")
    refused(write, root, "symbolic link", path="link.txt", content="x")
    refused(edit, root, "outside the allowed folders", path="linkdir/secret.txt", old="s",
            new="x")
    refused(write, root, "outside the allowed folders", path="linkdir/new.txt", content="x")
    (root / "dangling").symlink_to(tmp_path / "nowhere.txt")
    refused(write, root, "symbolic link", path="dangling", content="x")
    assert not (tmp_path / "nowhere.txt").exists()


def test_a_symlink_inside_the_roots_is_refused_too_but_names_the_way_out(edit, root):
    (root / "alias.txt").symlink_to(root / "notes.txt")
    message = refused(edit, root, "symbolic link", path="alias.txt", old="beta", new="x")
    assert "path of the file it points to" in message


def test_binary_files_are_refused(edit, write, root):
    (root / "blob.bin").write_bytes(b"head\x00tail")
    refused(edit, root, "binary", path="blob.bin", old="head", new="x")
    refused(write, root, "binary", path="blob.bin", content="text")
    refused(write, root, "NUL", path="new.txt", content="a\x00b")


def test_not_utf8_is_refused(edit, root):
    (root / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    refused(edit, root, "not UTF-8 text", path="latin1.txt", old="caf", new="x")


def test_too_large_is_refused(edit, write, root):
    (root / "big.txt").write_text("x" * 200 + "\n")
    with pytest.raises(ToolError) as e:
        edit(path="big.txt", old="x", new="y", replace_all=True, context=ctx(root, max_bytes=100))
    assert "201 bytes" in e.value.message and "max_bytes" in e.value.message
    with pytest.raises(ToolError) as e:
        write(path="new.txt", content="y" * 101, context=ctx(root, max_bytes=100))
    assert "over 100 bytes" in e.value.message and not (root / "new.txt").exists()
    with pytest.raises(ToolError):  # an edit that would make the file too large
        edit(path="notes.txt", old="beta", new="b" * 200, context=ctx(root, max_bytes=100))


@pytest.mark.parametrize("tool", ["edit", "write"])
def test_max_bytes_is_checked_in_the_config(tool, tmp_path):
    from agentcli.errors import ConfigError

    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"tools:\n  options:\n    {tool}:\n      max_bytes: 10000001\n")
    with pytest.raises(ConfigError) as e:
        load_tools(load_settings(cfg), warn=lambda line: None)
    assert f"tools.options.{tool}.max_bytes" in e.value.message
    cfg.write_text(f"tools:\n  options:\n    {tool}:\n      max_bytes: 10000000\n")
    assert load_tools(load_settings(cfg), warn=lambda line: None)[tool].options == {
        "max_bytes": 10_000_000}


def test_missing_file_and_folder_for_edit(edit, root):
    refused(edit, root, "does not exist; use the write tool", path="nope.txt", old="a", new="b")
    refused(edit, root, "does not exist", path="no/such/dir.txt", old="a", new="b")


def test_directories_and_fifos_are_refused_without_blocking(edit, write, root):
    refused(edit, root, "a directory", path="sub", old="a", new="b")
    refused(write, root, "a directory", path=".", content="b")
    os.mkfifo(root / "pipe")
    refused(edit, root, "FIFO", path="pipe", old="a", new="b")
    refused(write, root, "FIFO", path="pipe", content="b")


def test_a_file_changed_after_approval_is_not_written(edit, root):
    target = root / "notes.txt"
    context = ToolContext("edit", {}, cwd=str(root), writable=(str(root),),
                          expected={str(target): files.sha256(b"what the user approved\n")})
    with pytest.raises(ToolError) as e:
        edit(path="notes.txt", old="beta", new="BETA", context=context)
    assert "changed on disk after the change was shown for approval" in e.value.message
    assert target.read_text() == "alpha\nbeta\ngamma\n"


# --- where they may write -------------------------------------------------------------------------

def test_file_read_roots_marked_writable_are_writable_too(write, root, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    refused(write, root, "outside the allowed folders", path=str(notes / "n.md"), content="x")
    write(path=str(notes / "n.md"), content="x\n", context=ctx(root, notes))
    assert (notes / "n.md").read_text() == "x\n"
    executor = Executor({}, None, roots=[str(notes), {"path": "../elsewhere"},
                                         {"path": "~/x", "writable": False},
                                         {"path": str(notes), "writable": True}])
    assert executor.writable(str(root)) == (str(root), str(notes))
    assert files.resolve_roots([str(notes), {"path": ".", "writable": True}], str(root)) == [
        str(notes), str(root)]


def test_file_read_accepts_the_writable_form_of_roots(tmp_path, loaded, root):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("tools:\n  options:\n    file_read:\n      roots:\n        - .\n"
                   "        - {path: ../root-evil, writable: true}\n")
    tools = load_tools(load_settings(cfg), warn=lambda line: None)
    fr = tools["file_read"]
    read = fr.function()
    text = read(path="../root-evil/secret.txt",
                context=ToolContext("file_read", fr.options, cwd=str(root)))
    assert text == "secret\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("tools:\n  options:\n    file_read:\n      roots: [{path: x, write: true}]\n")
    from agentcli.errors import ConfigError

    with pytest.raises(ConfigError):
        load_tools(load_settings(bad), warn=lambda line: None)


# --- temporary files ------------------------------------------------------------------------------

def test_a_temp_file_left_by_a_killed_write_is_removed_by_the_next_write(write, root):
    dead = root / f".notes.txt{atomic.TEMP_TAG}999999999-dead.tmp"
    dead.write_text("half a fi")
    live = root / f".notes.txt{atomic.TEMP_TAG}1-beef.tmp"  # pid 1 is alive, and it is recent
    live.write_text("being written")
    other = root / f".other.txt{atomic.TEMP_TAG}999999999-dead.tmp"  # another file's: left alone
    other.write_text("x")
    write(path="notes.txt", content="new\n", context=ctx(root))
    assert not dead.exists() and live.exists() and other.exists()
    old = os.path.getmtime(live) - atomic.STALE_TEMP_SECONDS - 10
    os.utime(live, (old, old))
    write(path="notes.txt", content="newer\n", context=ctx(root))
    assert not live.exists()


# --- who may declare `files` ------------------------------------------------------------------------

def test_only_builtins_may_declare_files(tmp_path):
    (tmp_path / "sneaky.py").write_text("def run(path):\n    return 'x'\n")
    manifest = tmp_path / "sneaky.yaml"
    manifest.write_text("name: sneaky\ndescription: d\nentrypoint: sneaky:run\nfiles: write\n"
                        "parameters: {type: object, properties: {path: {type: string}}}\n")
    with pytest.raises(PluginError) as e:
        tool_from_manifest(manifest, "tools-dir")
    assert "field 'files'" in e.value.message and "built-in" in e.value.message
    manifest.write_text(manifest.read_text().replace("files: write", "files: maybe"))
    with pytest.raises(PluginError) as e:
        tool_from_manifest(manifest, "builtin")
    assert "must be one of read, write" in e.value.message
