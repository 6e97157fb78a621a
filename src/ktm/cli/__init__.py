"""The `ktm` command: a thin layer over the library, generated from its config dataclasses.

Every command takes ``--config FILE`` (a JSON object whose keys are the command's option
names, typed as its dataclasses say); options given on the command line win. Bad usage or
input exits with code 2 and a one-line message.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..errors import KTMError
from .parser import EXIT_USAGE, build_parser

EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C

__all__ = ["EXIT_USAGE", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    from ..io_utils import read_json
    from .generate import file_values

    argv = list(sys.argv[1:] if argv is None else argv)
    values: dict = {}
    command = None
    try:
        args = vars(build_parser().parse_args(argv))
        command = args.pop("command")
        given = {k: v for k, v in args.items() if not k.startswith("_") and k != "config"}
        if "config" in args:
            where = f"config file {args['config']}"
            values = file_values(read_json(args["config"], "config file"), command.configs, where)
        values.update(given)
        return command.run(values)
    except KTMError as e:
        print(f"ktm: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        from ..io_utils import disk_trouble

        where = e.filename or values.get("out") or "."
        why = disk_trouble(e, where)
        if why is None:
            raise
        print(f"ktm: error: could not write {where}: {why}; make room (or choose another "
              f"--out), then continue with --resume", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    except KeyboardInterrupt:
        if command is not None and command.words in (("train",), ("pretrain",)):
            name = command.words[0]
            hint = f"`ktm {name} --resume --out {values.get('out')}` continues it"
        else:
            hint = "nothing was saved"
        print(f"ktm: interrupted; {hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
