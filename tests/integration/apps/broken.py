"""An app module that does not import."""

import shards
import shards_this_module_does_not_exist  # noqa: F401

app = shards.App()
