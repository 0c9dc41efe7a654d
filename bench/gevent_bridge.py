"""The bridge under gevent, for measuring the server model: ``python -m bench.gevent_bridge --config ...``.

Monkey-patches the standard library before anything else is imported, then
runs ``python -m bridge`` unchanged. Not a supported way to run a show.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import sys  # noqa: E402

os.environ["STAGE_BRIDGE_ASYNC_MODE"] = "gevent"

from bridge.__main__ import main  # noqa: E402

sys.exit(main())
