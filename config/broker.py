"""kombu's filesystem transport, with messages written atomically.

kombu writes a message file in place under its final name; a consumer polling the folder can
move and read it while it is still empty or half written, and the worker then dies with
"Unrecoverable error: JSONDecodeError" (seen under load in tests/consensus/test_consensus_worker.py).
Here a message is written under a name the consumer ignores and renamed into place, which is
atomic within one folder, so a consumer sees a whole message or none.
"""

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        # The consumer takes files whose name after the first dot is exactly "<queue>.msg".
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
