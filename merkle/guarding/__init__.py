"""The use step of the flow: verify, then hand a loader the verified bytes
and nothing else (issue 21; docs/deploy.md, "In-process: merkle.guard").

- `guard`: `merkle.guard(PATH, BUNDLE, name=..., keys=[...])`, the trust
  path and the check, then a `Guard` holding every file that verified.
- `holding`: each file opened once below the root, never through a link,
  copied into sealed memory ("sealed") or kept open ("pinned"), and hashed
  as held.

Above the core: it imports verifying, signing, source and hashing; nothing
below imports it.
"""

from merkle.guarding.guard import Guard, guard
from merkle.guarding.holding import MODES, Mode

__all__ = ["MODES", "Guard", "Mode", "guard"]
