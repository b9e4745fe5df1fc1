"""`python -m demo [--run PAGE=RUN ...] [--host HOST] [--port PORT]`: the web demo of the trained models.

Each page uses its project's newest finished run, or the runs `--run` names
(`--run mnist=runs/mnist_cnn/<run>`; repeat --run for several style networks or
IMDB models). The server listens on 127.0.0.1 only, unless `--host` says otherwise.
"""

import sys
from collections import defaultdict

from common.cli import OneLineErrorParser
from common.errors import UserError, warn

LOOPBACK = ("127.0.0.1", "localhost")


def named_runs(values, keys):
    """{page key: [paths]} from PAGE=RUN values."""
    named = defaultdict(list)
    for value in values:
        key, equals, path = value.partition("=")
        if not equals or not path:
            raise UserError(f"--run {value}: write PAGE=RUN, e.g. mnist=runs/mnist_cnn/<run>")
        if key not in keys:
            raise UserError(f"--run {value}: no page {key!r}; the pages are {', '.join(keys)}")
        named[key].append(path)
    return dict(named)


def main(argv=None):
    parser = OneLineErrorParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], metavar="PAGE=RUN",
                        help="the run (folder or model file) a page uses; default: the project's newest finished run")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only); another one lets others use the demo")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default: 7860; 0: any free port)")
    args = parser.parse_args(argv)
    from demo import pages, server

    try:
        named = named_runs(args.run, [page.key for page in pages.PAGES])
        from common import backend  # noqa: F401  (Keras and its backend first, their start-up lines kept quiet)

        tabs = server.find_models(named)
        demo = server.DemoServer((args.host, args.port), tabs)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot listen on {args.host}:{args.port} ({error.strerror or error})", file=sys.stderr)
        return 2
    if args.host not in LOOPBACK:
        warn(f"listening on {args.host}: anyone who can reach this machine there can use the demo")
    for tab in tabs:
        print(f"{tab.page.key:10} {', '.join(map(str, tab.paths)) if tab.ready else server.missing_line(tab.page)}")
    host, port = demo.server_address[:2]
    print(f"demo at http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    try:
        demo.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        demo.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
