"""FileEditor: the str_replace_editor commands and their error cases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from convo.agent.editor import EditorResult, FileEditor
from convo.runtime.base import SandboxSpec
from convo.runtime.process import ProcessSandbox


@pytest.fixture
def editor(sandbox: ProcessSandbox) -> FileEditor:
    return FileEditor(sandbox, max_output_chars=2000)


@pytest.fixture
def root(spec: SandboxSpec) -> Path:
    return spec.workspace


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


async def test_view_file_with_line_numbers(editor: FileEditor, root: Path) -> None:
    write(root / "a.py", "one\ntwo\nthree\n")
    result = await editor(command="view", path=str(root / "a.py"))
    assert result.success
    assert result.kind == "read"
    assert result.content.startswith(f"Here's the result of running `cat -n` on {root}/a.py:\n")
    assert "     1\tone\n     2\ttwo\n     3\tthree\n" in result.content
    assert (result.old_content, result.new_content, result.diff) == (None, None, "")


async def test_view_range(editor: FileEditor, root: Path) -> None:
    write(root / "a.txt", "\n".join(f"line{n}" for n in range(1, 11)))
    result = await editor(command="view", path="a.txt", view_range=[3, 4])
    assert "     3\tline3\n     4\tline4\n" in result.content
    assert "line5" not in result.content
    tail = await editor(command="view", path="a.txt", view_range=[9, -1])
    assert "     9\tline9\n    10\tline10" in tail.content
    for bad in ([0, 2], [5, 3], [1, 99], [1]):
        failed = await editor(command="view", path="a.txt", view_range=bad)
        assert not failed.success
        assert "view_range" in failed.content


async def test_view_directory_two_levels_without_hidden(editor: FileEditor, root: Path) -> None:
    write(root / "src" / "pkg" / "deep" / "x.py", "")
    write(root / "src" / "main.py", "")
    write(root / ".git" / "config", "")
    write(root / "src" / ".hidden", "")
    result = await editor(command="view", path=str(root))
    assert result.success
    assert "up to 2 levels deep" in result.content
    assert f"{root}/src/\n" in result.content
    assert f"{root}/src/main.py" in result.content
    assert f"{root}/src/pkg/" in result.content
    assert "pkg/deep" not in result.content
    assert ".git" not in result.content and ".hidden" not in result.content
    ranged = await editor(command="view", path=str(root), view_range=[1, 2])
    assert not ranged.success


async def test_view_missing_binary_and_large(editor: FileEditor, root: Path) -> None:
    missing = await editor(command="view", path="nope.txt")
    assert not missing.success
    assert "does not exist" in missing.content
    (root / "bin.dat").write_bytes(b"\x00\x01\x02")
    binary = await editor(command="view", path="bin.dat")
    assert not binary.success
    assert "binary" in binary.content
    write(root / "big.txt", "\n".join("x" * 50 for _ in range(1000)))
    big = await editor(command="view", path="big.txt")
    assert big.success
    assert "<response clipped>" in big.content
    assert len(big.content) < 2600


async def test_create(editor: FileEditor, root: Path) -> None:
    result = await editor(command="create", path="new/dir/f.txt", file_text="hello\n")
    assert result.success
    assert result.kind == "edit"
    assert "File created successfully" in result.content
    assert (root / "new" / "dir" / "f.txt").read_text() == "hello\n"
    assert (result.old_content, result.new_content) == (None, "hello\n")
    assert "+hello" in result.diff


async def test_create_refuses_to_overwrite(editor: FileEditor, root: Path) -> None:
    write(root / "f.txt", "keep")
    result = await editor(command="create", path="f.txt", file_text="new")
    assert not result.success
    assert "already exists" in result.content
    assert (root / "f.txt").read_text() == "keep"
    no_text = await editor(command="create", path="g.txt")
    assert not no_text.success
    assert "file_text" in no_text.content


async def test_str_replace(editor: FileEditor, root: Path) -> None:
    write(root / "f.py", "a = 1\nb = 2\nc = 3\n")
    result = await editor(command="str_replace", path="f.py", old_str="b = 2", new_str="b = 20")
    assert result.success
    assert (root / "f.py").read_text() == "a = 1\nb = 20\nc = 3\n"
    assert "has been edited" in result.content
    assert "     2\tb = 20" in result.content
    assert (result.old_content, result.new_content) == (
        "a = 1\nb = 2\nc = 3\n",
        "a = 1\nb = 20\nc = 3\n",
    )
    assert "-b = 2\n+b = 20\n" in result.diff


async def test_str_replace_with_empty_new_str_deletes(editor: FileEditor, root: Path) -> None:
    write(root / "f.txt", "keep\ndrop me\nkeep\n")
    result = await editor(command="str_replace", path="f.txt", old_str="drop me\n")
    assert result.success
    assert (root / "f.txt").read_text() == "keep\nkeep\n"


async def test_str_replace_errors(editor: FileEditor, root: Path) -> None:
    write(root / "f.txt", "x = 1\ny = 2\nx = 1\n")
    absent = await editor(command="str_replace", path="f.txt", old_str="zzz", new_str="q")
    assert not absent.success
    assert "did not appear verbatim" in absent.content
    twice = await editor(command="str_replace", path="f.txt", old_str="x = 1", new_str="q")
    assert not twice.success
    assert "Multiple occurrences (2)" in twice.content
    assert "[1, 3]" in twice.content
    same = await editor(command="str_replace", path="f.txt", old_str="y = 2", new_str="y = 2")
    assert not same.success
    no_old = await editor(command="str_replace", path="f.txt", new_str="q")
    assert not no_old.success
    missing = await editor(command="str_replace", path="nope", old_str="a", new_str="b")
    assert not missing.success
    directory = await editor(command="str_replace", path=".", old_str="a", new_str="b")
    assert not directory.success
    assert (root / "f.txt").read_text() == "x = 1\ny = 2\nx = 1\n"


async def test_insert(editor: FileEditor, root: Path) -> None:
    write(root / "f.txt", "one\ntwo")
    top = await editor(command="insert", path="f.txt", insert_line=0, new_str="zero")
    assert top.success
    assert (root / "f.txt").read_text() == "zero\none\ntwo"
    middle = await editor(command="insert", path="f.txt", insert_line=2, new_str="one-and-a-half")
    assert middle.success
    assert "     3\tone-and-a-half" in middle.content
    end = await editor(command="insert", path="f.txt", insert_line=4, new_str="three")
    assert end.success
    assert (root / "f.txt").read_text() == "zero\none\none-and-a-half\ntwo\nthree"
    bad = await editor(command="insert", path="f.txt", insert_line=99, new_str="x")
    assert not bad.success
    assert "insert_line" in bad.content
    no_text = await editor(command="insert", path="f.txt", insert_line=1)
    assert not no_text.success


async def test_undo_edit(editor: FileEditor, root: Path) -> None:
    write(root / "f.txt", "v1")
    await editor(command="str_replace", path="f.txt", old_str="v1", new_str="v2")
    await editor(command="str_replace", path="f.txt", old_str="v2", new_str="v3")
    first = await editor(command="undo_edit", path="f.txt")
    assert first.success
    assert (root / "f.txt").read_text() == "v2"
    assert (first.old_content, first.new_content) == ("v3", "v2")
    await editor(command="undo_edit", path="f.txt")
    assert (root / "f.txt").read_text() == "v1"
    none_left = await editor(command="undo_edit", path="f.txt")
    assert not none_left.success
    assert "No edit history" in none_left.content


async def test_undo_of_create_removes_the_file(editor: FileEditor, root: Path) -> None:
    await editor(command="create", path="made.txt", file_text="x")
    result = await editor(command="undo_edit", path="made.txt")
    assert result.success
    assert not (root / "made.txt").exists()


async def test_paths_outside_the_workspace(editor: FileEditor, root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    os.symlink(secret, root / "link")
    cases = [
        ("view", "../secret.txt"),
        ("view", "/etc/passwd"),
        ("view", "link"),
        ("create", "../evil.txt"),
        ("str_replace", "link"),
    ]
    for command, path in cases:
        result = await editor(command=command, path=path, file_text="x", old_str="s", new_str="t")
        assert not result.success, (command, path)
        assert "outside the workspace" in result.content
    assert secret.read_text() == "s3cret"
    assert not (tmp_path / "workspaces" / "evil.txt").exists()


async def test_unknown_command(editor: FileEditor) -> None:
    result = await editor(command="delete", path="x")
    assert result == EditorResult(result.content, False, "edit")
    assert "Unrecognized command" in result.content


async def test_symlinked_directory_inside_the_workspace_is_followed(
    editor: FileEditor, root: Path
) -> None:
    write(root / "real" / "f.txt", "a")
    os.symlink(root / "real", root / "alias")
    result = await editor(command="str_replace", path="alias/f.txt", old_str="a", new_str="b")
    assert result.success
    assert (root / "real" / "f.txt").read_text() == "b"
