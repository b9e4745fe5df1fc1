"""The demo's web server, from Python's standard library: one page with a tab per project, one answer at a time.

GET / is the page, GET /static/<file> its script and style sheet; POST /run/<page>
takes a form as JSON and returns the page's answer as JSON. Models answer one request
at a time (a lock): the others wait their turn, and the page shows how long its own
request has waited and worked. The Content-Security-Policy header lets the page load
and fetch nothing but this server's own files, so it never reaches the network.
"""

import base64
import html
import json
import sys
import threading
import traceback
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from common.errors import UserError
from demo import pages, uploads

STATIC = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# The form's JSON: an upload's bytes in base64 (4 characters for every 3 bytes), and the form's other fields.
MAX_REQUEST_BYTES = uploads.MAX_BYTES * 4 // 3 + 2**16
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass
class Tab:
    """A page and what the demo found for it: the models' paths, or none."""

    page: pages.Page
    paths: list

    @property
    def ready(self):
        return bool(self.paths)


def find_models(named):
    """One Tab per page. `named` ({page key: [paths]}) are the runs the user chose; a run named but unusable
    is an error, a page without any trained run is not (it says how to train one)."""
    tabs = []
    for page in pages.PAGES:
        try:
            tabs.append(Tab(page, page.find(named.get(page.key, []))))
        except UserError:
            if page.key in named:
                raise
            tabs.append(Tab(page, []))
    return tabs


def answer(tab, request):
    """The JSON a page's request gets: its answer, or {"error": one line}."""
    if not tab.ready:
        return {"error": missing_line(tab.page)}
    form = request.get("form") if isinstance(request.get("form"), dict) else {}
    try:
        with uploads.saved_upload(request.get("upload")) as upload:
            result = tab.page.answer(tab.paths, form, upload)
    except UserError as error:
        return {"error": str(error)}
    return {"lines": [str(line) for line in result.lines], "bars": [[str(label), float(value)] for label, value in result.bars],
            "pictures": [[caption, data_url(picture)] for caption, picture in result.pictures]}


def data_url(picture):
    raw = pages.png_bytes(picture)
    kind = "image/gif" if raw.startswith(b"GIF8") else "image/png"
    return f"data:{kind};base64,{base64.b64encode(raw).decode('ascii')}"


def missing_line(page):
    return f"No trained {page.title} model yet: make {page.train} trains one."


# --- the page ------------------------------------------------------------------------------


def render(tabs):
    """The whole page: the tab bar, then each project's form (or its one-line "train one" note)."""
    buttons = "".join(f'<button type="button" class="tab" data-tab="{tab.page.key}">{html.escape(tab.page.title)}</button>'
                      for tab in tabs)
    sections = "".join(render_tab(tab) for tab in tabs)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Deep-learning projects: demo</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/style.css"></head><body>'
        f'<h1>Deep-learning projects</h1><nav>{buttons}</nav>{sections}<script src="/static/app.js"></script></body></html>'
    )


def render_tab(tab):
    page = tab.page
    head = f'<section class="page" id="tab-{page.key}"><h2>{html.escape(page.title)}</h2><p>{html.escape(page.about)}</p>'
    if not tab.ready:
        return f'{head}<p class="missing">{html.escape(missing_line(page))}</p></section>'
    fields = "".join(render_field(field) for field in page.fields)
    if page.model_label:
        labels = [page.model_label(path) for path in tab.paths]
        fields = render_field(pages.Field("model", "model", "select", labels[0], tuple(labels))) + fields
    shown = ", ".join(html.escape(str(path)) for path in tab.paths)
    return (f'{head}<p class="model">model: {shown}</p><form data-page="{page.key}">{fields}'
            f'<p><button type="submit">Run</button> <span class="status" role="status"></span></p></form>'
            f'<div class="result" id="result-{page.key}"></div></section>')


def render_field(field):
    name, label, value = html.escape(field.name), html.escape(field.label), html.escape(str(field.default))
    if field.kind == "textarea":
        control = f'<textarea name="{name}" rows="5">{value}</textarea>'
    elif field.kind == "select":
        options = "".join(f'<option{" selected" if choice == field.default else ""}>{html.escape(choice)}</option>'
                          for choice in field.choices)
        control = f'<select name="{name}">{options}</select>'
    elif field.kind == "checkbox":
        control = f'<input type="checkbox" name="{name}"{" checked" if field.default else ""}>'
    elif field.kind == "image":
        control = f'<input type="file" name="{name}" accept="image/*">'
        if field.drawing:
            control += ('<span class="drawing"><canvas width="280" height="280"></canvas>'
                        '<button type="button" class="clear">clear</button> draw with the mouse, or choose a file</span>')
    elif field.kind == "number":
        control = f'<input type="number" step="any" name="{name}" value="{value}">'
    else:
        control = f'<input type="text" name="{name}" value="{value}">'
    return f'<label class="field {field.kind}"><span>{label}</span>{control}</label>'


# --- HTTP ----------------------------------------------------------------------------------


class DemoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, tabs):
        super().__init__(address, Handler)
        self.tabs = {tab.page.key: tab for tab in tabs}
        self.page = render(tabs).encode("utf-8")
        self.one_at_a_time = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server_version = "demo"

    def do_GET(self):
        if self.path in ("/", "/index.html"):
            return self.send(HTTPStatus.OK, "text/html; charset=utf-8", self.server.page)
        name = self.path.removeprefix("/static/")
        if name != self.path and name in {path.name for path in STATIC.iterdir()} and Path(name).suffix in STATIC_TYPES:
            return self.send(HTTPStatus.OK, STATIC_TYPES[Path(name).suffix], (STATIC / name).read_bytes())
        self.send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found")

    def do_POST(self):
        tab = self.server.tabs.get(self.path.removeprefix("/run/"))
        if tab is None or not self.path.startswith("/run/"):
            return self.reply(HTTPStatus.NOT_FOUND, {"error": "no such page"})
        if self.headers.get_content_type() != "application/json":  # a form from another site cannot send JSON
            return self.reply(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "send the form as JSON"})
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True
            return self.reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              {"error": f"the upload is over {uploads.MAX_BYTES // 2**20} MB; pictures up to that size are accepted"})
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, UnicodeDecodeError):
            return self.reply(HTTPStatus.BAD_REQUEST, {"error": "the form arrived damaged; send it again"})
        with self.server.one_at_a_time:
            try:
                result = answer(tab, request if isinstance(request, dict) else {})
            except Exception as error:  # a bug, not the user's input: the page gets one line, the terminal the traceback
                traceback.print_exc(file=sys.stderr)
                result = {"error": f"the {tab.page.title} model failed ({type(error).__name__}: {error}); see the terminal"}
        self.reply(HTTPStatus.OK, result)

    def reply(self, status, content):
        self.send(status, "application/json", json.dumps(content).encode("utf-8"))

    def send(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # one short line a request, without the client's address
        print(f"{self.command} {self.path.split('?')[0]} {args[1] if len(args) > 1 else ''}", file=sys.stderr)
