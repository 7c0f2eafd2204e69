"""The frame of PostgreSQL's binary COPY stream, shared by every writer that builds one with numpy.

A stream is this header, then each row as a field count and each field as (length, value) in
network byte order (length -1 and no value for NULL), then the trailer.
"""

from __future__ import annotations

import struct

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)  # signature, flags, no extension
COPY_TRAILER = struct.pack("!h", -1)
