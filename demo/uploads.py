"""Uploaded pictures: checked as the command lines check a file, kept in a temporary folder removed after the answer.

The browser sends a file's bytes (base64, in the form's JSON) and its name; the name
is only shown in messages, never used as a path. A file over 20 MB, or a picture over
4,096 pixels on a side, is refused in one line, as is a file that is not a picture.
"""

import base64
import binascii
import contextlib
import tempfile
from pathlib import Path

from common import images
from common.errors import UserError

MAX_BYTES = 20 * 2**20
MAX_SIDE = 4096


def shown_name(name):
    """The uploaded file's name as messages show it: its last part, printable, short."""
    name = "".join(c for c in Path(str(name or "")).name if c.isprintable())[:80]
    return name or "the picture"


@contextlib.contextmanager
def saved_upload(upload):
    """The upload ({"name", "data"} or None) as a checked picture file in a new temporary folder, or None.

    A UserError raised inside (here or by the page) names the file as the user knows it,
    not by its temporary path; the folder is removed whatever happens.
    """
    if not upload:
        yield None
        return
    if not isinstance(upload, dict):
        raise UserError("the upload arrived damaged; send it again")
    name = shown_name(upload.get("name"))
    try:
        raw = base64.b64decode(str(upload.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        raise UserError(f"{name}: the upload arrived damaged; send it again") from None
    if len(raw) > MAX_BYTES:
        raise UserError(f"{name}: {len(raw) / 2**20:.1f} MB; pictures up to {MAX_BYTES // 2**20} MB are accepted")
    with tempfile.TemporaryDirectory(prefix="demo-upload-") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(raw)
        try:
            with images.readable_image(path) as image:
                width, height = image.size
            if max(width, height) > MAX_SIDE:
                raise UserError(f"{path}: {width}x{height} pixels; pictures up to {MAX_SIDE:,} pixels on a side are accepted")
            yield path
        except UserError as error:
            raise UserError(str(error).replace(str(path), name)) from None
