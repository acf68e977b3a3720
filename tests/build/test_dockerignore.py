""".dockerignore: docker's documented examples, and what the context walk keeps."""
from __future__ import annotations

import pytest

from dockyard.build.context import BuildContext
from dockyard.build.dockerignore import PatternMatcher, read_patterns


def _matcher(text: str) -> PatternMatcher:
    return PatternMatcher(read_patterns(text))


@pytest.mark.parametrize("patterns,path,excluded", [
    # the examples of https://docs.docker.com/build/concepts/context/#dockerignore-files
    ("*/temp*", "somedir/temporary.txt", True),
    ("*/temp*", "somedir/temp", True),
    ("*/temp*", "temp", False),
    ("*/*/temp*", "somedir/subdir/temporary.txt", True),
    ("*/*/temp*", "somedir/temporary.txt", False),
    ("temp?", "tempa", True),
    ("temp?", "tempab", False),
    ("temp?", "dir/tempa", False),
    ("**/*.go", "main.go", True),
    ("**/*.go", "a/b/c/main.go", True),
    ("*.md\n!README.md", "CHANGES.md", True),
    ("*.md\n!README.md", "README.md", False),
    ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
    ("*.md\n!README*.md\nREADME-secret.md", "README-public.md", False),
    ("*.md\nREADME-secret.md\n!README*.md", "README-secret.md", False),
    # details of docker's matcher
    ("dir", "dir/deep/file", True),                 # a parent that matches excludes the child
    ("/abs", "abs", True),                          # a leading slash is the context root
    ("./x/../y", "y", True),                        # patterns are cleaned
    ("# comment\n\n  spaced  ", "spaced", True),
    ("a/**", "a/b/c", True),
    ("a/**", "a", False),
    ("**", "anything/at/all", True),
    ("[ab].txt", "b.txt", True),
    ("[ab].txt", "c.txt", False),
    ("file\\*", "file*", True),
    ("*.log\n!keep/*.log", "keep/x.log", False),
])
def test_documented_patterns(patterns, path, excluded):
    assert _matcher(patterns).excluded(path) is excluded


def test_walk_keeps_parents_of_reincluded_files(tmp_path):
    for rel in ("node_modules/pkg/index.js", "node_modules/keep/me.txt", "src/a.py", "docs/x.md"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    (tmp_path / ".dockerignore").write_text("node_modules\n!node_modules/keep\n*/*.md\n")
    ctx = BuildContext.from_dir(tmp_path)
    names = [rel for rel, _ in ctx.walk(".")]
    assert names == [".dockerignore", "docs", "node_modules", "node_modules/keep", "node_modules/keep/me.txt",
                     "src", "src/a.py"]


def test_dockerfile_specific_ignore_file_wins(tmp_path):
    (tmp_path / ".dockerignore").write_text("a\n")
    (tmp_path / "app.Dockerfile.dockerignore").write_text("b\n")
    for n in ("a", "b"):
        (tmp_path / n).write_text(n)
    ctx = BuildContext.from_dir(tmp_path, "app.Dockerfile")
    assert not ctx.excluded("a") and ctx.excluded("b")
