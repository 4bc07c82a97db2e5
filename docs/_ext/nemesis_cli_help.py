"""
Directives that show the ``nemesis-bkg`` command as it really is:

``.. nemesis-bkg-help:: [SUBCOMMAND]``
    the ``--help`` text, taken from the argument parser at build time;
``.. nemesis-bkg-run::``
    runs each line of its content (``nemesis-bkg ...``, optionally preceded
    by ``NAME=value`` environment settings, or ``mkdir FOLDER``) at build time, in a scratch
    folder shared by the page, and shows the commands with their output. A
    command that fails fails the build, so every command shown in the
    documentation is known to work;
``.. nemesis-bkg-file:: NAME``
    writes its content to the file NAME of that scratch folder (a
    configuration file, say) and shows it.
"""

import contextlib
import io
import os
import shlex
import tempfile

from docutils import nodes
from docutils.parsers.rst import Directive

#: argparse wraps at $COLUMNS: fixed so the pages do not depend on the terminal.
HELP_COLUMNS = "88"


@contextlib.contextmanager
def _working_directory(path):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def _environment(**settings):
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def _as_terminal(text):
    """What a terminal leaves on screen: a carriage return rewrites its line (progress bars)."""
    lines = []
    for line in text.split("\n"):
        parts = [part for part in line.split("\r") if part.strip()]
        if parts or not line:
            lines.append(parts[-1] if parts else "")
    return "\n".join(lines)


def _literal(text):
    block = nodes.literal_block(text, text)
    block["language"] = "console"
    return block


class NemesisHelp(Directive):
    """Insert ``nemesis-bkg [SUBCOMMAND] --help`` as a literal block."""

    optional_arguments = 1

    def run(self):
        from nemesis_bkg.cli import build_parser

        with _environment(COLUMNS=HELP_COLUMNS):
            parser = build_parser()
            if self.arguments:
                subparsers = parser._subparsers._group_actions[0].choices
                name = self.arguments[0]
                if name not in subparsers:
                    raise self.error(f"nemesis-bkg has no subcommand {name!r}")
                parser = subparsers[name]
            text = parser.format_help()
        command = " ".join(["nemesis-bkg", *self.arguments, "--help"])
        return [_literal(f"$ {command}\n{text}".rstrip())]


class NemesisRun(Directive):
    """Run ``nemesis-bkg`` command lines at build time and show their output."""

    has_content = True

    def run(self):
        from nemesis_bkg.cli import main

        env = self.state.document.settings.env
        folder = _scratch_folder(env.app, env.docname)
        shown = []
        for command in self.content:
            if not command.strip():
                continue
            argv = shlex.split(command)
            settings = {"COLUMNS": HELP_COLUMNS}
            while argv and "=" in argv[0]:
                name, value = argv.pop(0).split("=", 1)
                settings[name] = value
            if argv[:1] == ["mkdir"] and len(argv) > 1:
                for name in argv[1:]:
                    os.makedirs(os.path.join(folder, name), exist_ok=True)
                shown.append(f"$ {command}")
                continue
            if not argv or argv[0] != "nemesis-bkg":
                raise self.error(f"only nemesis-bkg and mkdir commands can be run, got {command!r}")
            output = io.StringIO()
            try:
                with (_working_directory(folder), _environment(**settings),
                      contextlib.redirect_stdout(output), contextlib.redirect_stderr(output)):
                    status = main(argv[1:])
            except SystemExit as stop:
                status = stop.code
            if status != 0:
                raise self.error(f"{command!r} exited with status {status}:\n{output.getvalue()}")
            shown.append(f"$ {command}\n{_as_terminal(output.getvalue())}".rstrip())
        return [_literal("\n".join(shown))]


class NemesisFile(Directive):
    """Write the content to a file of the page's scratch folder and show it."""

    required_arguments = 1
    has_content = True

    def run(self):
        env = self.state.document.settings.env
        folder = _scratch_folder(env.app, env.docname)
        name = self.arguments[0]
        text = "\n".join(self.content) + "\n"
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(text)
        block = nodes.literal_block(text, text)
        block["language"] = os.path.splitext(name)[1].lstrip(".") or "text"
        caption = nodes.caption(name, name)
        container = nodes.container("", caption, block, classes=["literal-block-wrapper"])
        container["literal_block"] = True
        return [container]


#: One scratch folder per page (kept out of the pickled build environment).
_SCRATCH = {}


def _scratch_folder(app, docname):
    if docname not in _SCRATCH:
        _SCRATCH[docname] = tempfile.TemporaryDirectory(prefix="nemesis-docs-")
    return _SCRATCH[docname].name


def _cleanup(app, exception):
    while _SCRATCH:
        _, folder = _SCRATCH.popitem()
        folder.cleanup()


def setup(app):
    app.add_directive("nemesis-bkg-help", NemesisHelp)
    app.add_directive("nemesis-bkg-run", NemesisRun)
    app.add_directive("nemesis-bkg-file", NemesisFile)
    app.connect("build-finished", _cleanup)
    return {"parallel_read_safe": False, "parallel_write_safe": True}
