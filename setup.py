"""Build of the optional compiled cores: the codec's (logmq/codec/_native.pyx), the share
groups' (logmq/broker/queues/_native_queue.pyx) and the producer's send fast path
(logmq/broker/_native_send.pyx).

Each extension is optional: without a C compiler (or if compiling fails for any reason) the
package installs pure-Python, and ``logmq.codec.implementation`` then says ``"python"``.
Set ``LOGMQ_REQUIRE_NATIVE=1`` to make a failed build an error instead (CI does).
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that reports a failed compile and carries on (pure-Python install)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # no compiler, no Python headers, ...
            self._skip(e)

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as e:
            self._skip(e)

    def _skip(self, e: Exception) -> None:
        if os.environ.get("LOGMQ_REQUIRE_NATIVE", "") not in ("", "0"):
            raise e
        print(f"logmq: building a native extension failed ({e}); that part stays pure Python",
              file=sys.stderr)


def extensions() -> list:
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("logmq: Cython not available; installing pure Python", file=sys.stderr)
        return []
    from setuptools import Extension

    flags = os.environ.get("LOGMQ_NATIVE_CFLAGS", "").split()
    ext = Extension("logmq.codec._native", ["logmq/codec/_native.pyx"],
                    depends=["logmq/codec/_native_walk.pxi", "logmq/codec/_native_bulk.pxi"],
                    extra_compile_args=flags,
                    extra_link_args=os.environ.get("LOGMQ_NATIVE_LDFLAGS", "").split())
    # the share-group engine's per-record loops (logmq/broker/queues/hot.py is the reference):
    # its own extension, so the broker's compiled code does not live in the codec's
    queue_ext = Extension("logmq.broker.queues._native_queue",
                          ["logmq/broker/queues/_native_queue.pyx"],
                          depends=["logmq/broker/queues/hot.py"],
                          extra_compile_args=flags,
                          extra_link_args=os.environ.get("LOGMQ_NATIVE_LDFLAGS", "").split())
    # Producer.send's fast path (logmq/broker/send_fast.py is the reference): the broker's too
    send_ext = Extension("logmq.broker._native_send", ["logmq/broker/_native_send.pyx"],
                         depends=["logmq/broker/send_fast.py"],
                         extra_compile_args=flags,
                         extra_link_args=os.environ.get("LOGMQ_NATIVE_LDFLAGS", "").split())
    out: list = []
    for e in (ext, queue_ext, send_ext):  # one at a time: a Cython error in one keeps the other
        try:
            out += cythonize([e], compiler_directives={"language_level": "3"}, quiet=True)
        except Exception as err:  # a Cython error must not stop a pure-Python install either
            if os.environ.get("LOGMQ_REQUIRE_NATIVE", "") not in ("", "0"):
                raise
            print(f"logmq: cythonizing {e.name} failed ({err}); it stays pure Python",
                  file=sys.stderr)
    return out

setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
